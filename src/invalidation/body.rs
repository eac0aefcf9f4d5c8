//! The invalidation request body: Go `encoding/json` of `{org, domain, project, name}`, in that
//! order, no field omitted, org always `flyte`.

use crate::gostr::push_json_string;
use crate::naming::DEFAULT_ORGANIZATION;

pub fn invalidation_body(domain: &str, project: &str, name: &str) -> String {
    let mut out = String::with_capacity(48 + domain.len() + project.len() + name.len());
    for (i, (key, value)) in [
        ("org", DEFAULT_ORGANIZATION),
        ("domain", domain),
        ("project", project),
        ("name", name),
    ]
    .into_iter()
    .enumerate()
    {
        out.push(if i == 0 { '{' } else { ',' });
        push_json_string(&mut out, key);
        out.push(':');
        push_json_string(&mut out, value);
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_in_go_order_and_html_escaped() {
        assert_eq!(
            invalidation_body("development", "flytesnacks", "my-secret"),
            r#"{"org":"flyte","domain":"development","project":"flytesnacks","name":"my-secret"}"#
        );
        assert_eq!(
            invalidation_body("", "", "a<b>&c"),
            r#"{"org":"flyte","domain":"","project":"","name":"a\u003cb\u003e\u0026c"}"#
        );
    }
}
