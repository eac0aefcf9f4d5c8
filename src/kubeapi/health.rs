//! `/livez`, `/readyz` and `/healthz`, answered the way kube-apiserver answers them (its
//! `healthz` package): `ok`, or with `?verbose` a line per check and `<probe> check passed`;
//! any failing check makes it 500 with every check's line and `<probe> check failed`, the
//! reason withheld (the endpoints are public); `?exclude=<check>` (repeatable) skips a check;
//! `/<probe>/<check>` runs one check and does give its reason. The engine's checks are `ping`
//! (always passes) and `etcd`, the role its store plays: it fails while the durable store
//! refuses writes until a restart, so a liveness probe on `/livez` restarts the process.

use super::status::Reply;
use bytes::Bytes;
use http::{Response, StatusCode, header};

/// Which health endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    Livez,
    Readyz,
    Healthz,
}

impl Probe {
    pub fn from_segment(segment: &str) -> Option<Probe> {
        match segment {
            "livez" => Some(Probe::Livez),
            "readyz" => Some(Probe::Readyz),
            "healthz" => Some(Probe::Healthz),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Probe::Livez => "livez",
            Probe::Readyz => "readyz",
            Probe::Healthz => "healthz",
        }
    }
}

/// The checks, in the order they are reported, with why each fails (if it does).
fn checks(store_problem: Option<&str>) -> [(&'static str, Option<&str>); 2] {
    [("ping", None), ("etcd", store_problem)]
}

fn plain(code: StatusCode, body: String) -> Reply {
    Response::builder()
        .status(code)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .header("x-content-type-options", "nosniff")
        .body(Bytes::from(body))
        .expect("static headers are valid")
}

/// The answer to `/<probe>` (`check` = `None`) or `/<probe>/<check>`, given the raw query and
/// why the store cannot take writes, if it cannot.
pub fn answer(
    probe: Probe,
    check: Option<&str>,
    query: Option<&str>,
    store_problem: Option<&str>,
) -> Reply {
    let checks = checks(store_problem);
    if let Some(wanted) = check {
        return match checks.iter().find(|(name, _)| *name == wanted) {
            None => super::status::text_reply(404, "404 page not found"),
            Some((_, None)) => plain(StatusCode::OK, "ok".into()),
            Some((_, Some(why))) => plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("internal server error: {why}\n"),
            ),
        };
    }
    let mut verbose = false;
    let mut excluded: Vec<String> = Vec::new();
    for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match &*key {
            "verbose" => verbose = true,
            "exclude" => excluded.push(value.into_owned()),
            _ => {}
        }
    }
    let mut lines = String::new();
    let mut failed = false;
    for (name, why) in checks {
        if excluded.iter().any(|e| e == name) {
            lines.push_str(&format!("[+]{name} excluded: ok\n"));
        } else if why.is_some() {
            failed = true;
            lines.push_str(&format!("[-]{name} failed: reason withheld\n"));
        } else {
            lines.push_str(&format!("[+]{name} ok\n"));
        }
    }
    let mut unknown: Vec<&String> = excluded
        .iter()
        .filter(|e| checks.iter().all(|(name, _)| name != e))
        .collect();
    unknown.sort();
    unknown.dedup();
    if !unknown.is_empty() {
        let quoted: Vec<String> = unknown.iter().map(|e| format!("{e:?}")).collect();
        lines.push_str(&format!(
            "warn: some health checks cannot be excluded: no matches for {}\n",
            quoted.join(",")
        ));
    }
    let name = probe.name();
    if failed {
        plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{lines}{name} check failed\n"),
        )
    } else if verbose {
        plain(StatusCode::OK, format!("{lines}{name} check passed\n"))
    } else {
        plain(StatusCode::OK, "ok".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(r: &Reply) -> (u16, &str) {
        (r.status().as_u16(), std::str::from_utf8(r.body()).unwrap())
    }

    #[test]
    fn a_store_refusing_writes_fails_every_probe_with_the_reason_withheld() {
        let why = Some("writing the store log: No space left on device");
        let r = answer(Probe::Livez, None, None, why);
        assert_eq!(
            text(&r),
            (
                500,
                "[+]ping ok\n[-]etcd failed: reason withheld\nlivez check failed\n"
            )
        );
        assert_eq!(r.headers()["x-content-type-options"], "nosniff");
        for probe in [Probe::Readyz, Probe::Healthz] {
            assert_eq!(answer(probe, None, Some("verbose"), why).status(), 500);
        }
        // Excluding the failing check passes; asking for it alone gives the reason.
        assert_eq!(
            text(&answer(Probe::Livez, None, Some("exclude=etcd"), why)),
            (200, "ok")
        );
        assert_eq!(
            text(&answer(Probe::Livez, Some("etcd"), None, why)),
            (
                500,
                "internal server error: writing the store log: No space left on device\n"
            )
        );
        assert_eq!(
            text(&answer(Probe::Livez, Some("ping"), None, why)),
            (200, "ok")
        );
    }

    #[test]
    fn healthy_probes_answer_ok_or_their_checks() {
        assert_eq!(text(&answer(Probe::Readyz, None, None, None)), (200, "ok"));
        assert_eq!(
            text(&answer(
                Probe::Readyz,
                None,
                Some("verbose&exclude=etcd&exclude=nope&exclude=nope"),
                None
            )),
            (
                200,
                "[+]ping ok\n[+]etcd excluded: ok\nwarn: some health checks cannot be excluded: \
                 no matches for \"nope\"\nreadyz check passed\n"
            )
        );
        assert_eq!(
            answer(Probe::Healthz, Some("log"), None, None).status(),
            404
        );
    }
}
