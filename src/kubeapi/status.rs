//! `Status` bodies and the HTTP responses that carry them, with the exact reasons, messages and
//! details the API server uses (docs/kubernetes-api.md §3.1, docs/kubernetes-api.md §3.4).

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use serde_json::{Map, Value, json};

pub type Reply = Response<Bytes>;

/// An API error: what the server answers instead of an object.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    pub code: u16,
    /// `None` for a non-Status Go error (a 500 without a reason).
    pub reason: Option<&'static str>,
    pub message: String,
    pub details: Option<Box<Value>>,
    pub retry_after: Option<u32>,
    /// Extra `metadata` (only the 410 continue case fills it).
    pub metadata: Option<Box<Value>>,
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason: Some(reason),
            message: message.into(),
            details: None,
            retry_after: None,
            metadata: None,
        }
    }

    fn with_details(mut self, details: Value) -> Self {
        self.details = Some(Box::new(details));
        self
    }

    pub fn not_found(resource: &str, name: &str) -> Self {
        Self::new(404, "NotFound", format!("{resource} \"{name}\" not found"))
            .with_details(json!({"name": name, "kind": resource}))
    }

    pub fn already_exists(name: &str, terminating: bool) -> Self {
        let prefix = if terminating {
            "object is being deleted: "
        } else {
            ""
        };
        Self::new(
            409,
            "AlreadyExists",
            format!("{prefix}secrets \"{name}\" already exists"),
        )
        .with_details(json!({"name": name, "kind": "secrets"}))
    }

    pub fn namespace_already_exists(name: &str, terminating: bool) -> Self {
        let prefix = if terminating {
            "object is being deleted: "
        } else {
            ""
        };
        Self::new(
            409,
            "AlreadyExists",
            format!("{prefix}namespaces \"{name}\" already exists"),
        )
        .with_details(json!({"name": name, "kind": "namespaces"}))
    }

    pub fn conflict(name: &str, cause: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!("Operation cannot be fulfilled on secrets \"{name}\": {cause}"),
        )
        .with_details(json!({"name": name, "kind": "secrets"}))
    }

    pub fn stale_resource_version(name: &str) -> Self {
        Self::conflict(
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// Delete-precondition conflicts name the Kind (`Secret`), unlike every other conflict.
    pub fn delete_precondition(
        name: &str,
        what: &str,
        given: &str,
        stored: &str,
        hint: &str,
    ) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on Secret \"{name}\": the {what} in the precondition ({given}) does not match the {what} in record ({stored}). The object might have been {hint}"
            ),
        )
        .with_details(json!({"name": name, "kind": "Secret"}))
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// A 422 for an options object (`CreateOptions`, `DeleteOptions`, `ListOptions`).
    pub fn invalid_options(kind: &str, detail: &str) -> Self {
        Self::new(
            422,
            "Invalid",
            format!("{kind}.meta.k8s.io \"\" is invalid: {detail}"),
        )
        .with_details(json!({"group": "meta.k8s.io", "kind": kind}))
    }

    /// A 422 for an object of `kind` (`Secret`, `Namespace`) with field errors.
    pub fn invalid(kind: &str, name: &str, errors: &[FieldError]) -> Self {
        let mut rendered: Vec<String> = Vec::new();
        for e in errors {
            let r = e.to_string();
            if !rendered.contains(&r) {
                rendered.push(r);
            }
        }
        let joined = if rendered.len() == 1 {
            rendered.remove(0)
        } else {
            format!("[{}]", rendered.join(", "))
        };
        let causes: Vec<Value> = errors
            .iter()
            .map(|e| json!({"reason": e.kind.reason(), "message": e.body(), "field": e.field}))
            .collect();
        Self::new(
            422,
            "Invalid",
            format!("{kind} \"{name}\" is invalid: {joined}"),
        )
        .with_details(json!({"name": name, "kind": kind, "causes": causes}))
    }

    pub fn expired(message: impl Into<String>, continue_token: Option<String>) -> Self {
        let mut e = Self::new(410, "Expired", message);
        e.metadata = continue_token.map(|t| Box::new(json!({"continue": t})));
        e
    }

    pub fn unsupported_media_type() -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            "the body of the request was in an unknown format - accepted media types include: application/json, application/vnd.kubernetes.protobuf",
        )
    }

    /// 415 naming the accepted media types (a PATCH lists the patch types).
    pub fn unsupported_media_type_of(accepted: &[&str]) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: {}",
                accepted.join(", ")
            ),
        )
    }

    /// apimachinery's `NewGenericServerResponse(422, ...)`: reason Invalid, empty details.
    pub fn generic_invalid(message: impl Into<String>) -> Self {
        Self::new(422, "Invalid", message).with_details(json!({}))
    }

    pub fn too_large_with(message: impl Into<String>) -> Self {
        Self::new(413, "RequestEntityTooLarge", message)
    }

    /// Creating in a terminating namespace (the NamespaceLifecycle admission plugin,
    /// apiserver/pkg/admission/plugin/namespace/lifecycle/admission.go).
    pub fn namespace_terminating(resource: &str, name: &str, namespace: &str) -> Self {
        Self::new(
            403,
            "Forbidden",
            format!(
                "{resource} \"{name}\" is forbidden: unable to create new content in namespace {namespace} because it is being terminated"
            ),
        )
        .with_details(json!({"name": name, "kind": resource, "causes": [{
            "reason": "NamespaceTerminating",
            "message": format!("namespace {namespace} is being terminated"),
            "field": "metadata.namespace",
        }]}))
    }

    /// A Conflict on any resource (`NewConflict`).
    pub fn conflict_on(resource: &str, name: &str, cause: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!("Operation cannot be fulfilled on {resource} \"{name}\": {cause}"),
        )
        .with_details(json!({"name": name, "kind": resource}))
    }

    /// Server-side apply conflicts (`NewApplyConflict`): the causes name the managers and fields.
    pub fn apply_conflict(message: String, causes: Vec<Value>) -> Self {
        Self::new(409, "Conflict", message).with_details(json!({"causes": causes}))
    }

    pub fn not_acceptable() -> Self {
        Self::new(
            406,
            "NotAcceptable",
            "only the following media types are accepted: application/json",
        )
    }

    /// 406 for a watch whose first acceptable media type cannot be streamed (YAML).
    pub fn not_acceptable_stream() -> Self {
        Self::new(
            406,
            "NotAcceptable",
            "only the following media types are accepted: application/json;stream=watch",
        )
    }

    /// 406 for a media type the server knows but cannot produce for this object.
    pub fn not_acceptable_because(message: String) -> Self {
        Self::new(406, "NotAcceptable", message)
    }

    pub fn too_large() -> Self {
        Self::new(
            413,
            "RequestEntityTooLarge",
            "Request entity too large: limit is 3145728",
        )
    }

    pub fn method_not_allowed(action: &str, resource: &str) -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            format!("{action} is not supported on resources of kind \"{resource}\""),
        )
        .with_details(json!({"kind": resource}))
    }

    /// A Go error that is not a Status: HTTP 500 with no reason.
    pub fn bare_internal(message: impl Into<String>) -> Self {
        ApiError {
            code: 500,
            reason: None,
            message: message.into(),
            details: None,
            retry_after: None,
            metadata: None,
        }
    }

    pub fn internal(cause: &str) -> Self {
        Self::new(
            500,
            "InternalError",
            format!("Internal error occurred: {cause}"),
        )
        .with_details(json!({"causes": [{"message": cause}]}))
    }

    pub fn server_timeout(op: &str, retry_after: u32) -> Self {
        let mut e = Self::new(
            500,
            "ServerTimeout",
            format!("The {op} operation against secrets could not be completed at this time, please try again."),
        )
        .with_details(json!({"name": op, "kind": "secrets", "retryAfterSeconds": retry_after}));
        e.retry_after = Some(retry_after);
        e
    }

    pub fn service_unavailable(message: impl Into<String>, retry_after: Option<u32>) -> Self {
        let mut e = Self::new(503, "ServiceUnavailable", message);
        e.retry_after = retry_after;
        e
    }

    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(504, "Timeout", format!("Timeout: {}", message.into())).with_details(json!({}))
    }

    /// A read asked for a resourceVersion the store has not reached, even after waiting
    /// [docs/kubernetes-api.md §2.6].
    pub fn resource_version_too_large(requested: u64, current: u64) -> Self {
        let mut e = Self::new(
            504,
            "Timeout",
            format!("Timeout: Too large resource version: {requested}, current: {current}"),
        )
        .with_details(json!({
            "causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
            "retryAfterSeconds": 1,
        }));
        e.retry_after = Some(1);
        e
    }

    pub fn too_many_requests(message: impl Into<String>, retry_after: u32) -> Self {
        let mut e = Self::new(429, "TooManyRequests", message)
            .with_details(json!({"retryAfterSeconds": retry_after}));
        e.retry_after = Some(retry_after);
        e
    }

    pub fn status_body(&self) -> Value {
        let mut m = Map::new();
        m.insert("kind".into(), json!("Status"));
        m.insert("apiVersion".into(), json!("v1"));
        m.insert(
            "metadata".into(),
            self.metadata
                .as_deref()
                .cloned()
                .unwrap_or_else(|| json!({})),
        );
        m.insert("status".into(), json!("Failure"));
        m.insert("message".into(), json!(self.message));
        if let Some(reason) = self.reason {
            m.insert("reason".into(), json!(reason));
        }
        if let Some(details) = &self.details {
            m.insert("details".into(), (**details).clone());
        }
        m.insert("code".into(), json!(self.code));
        Value::Object(m)
    }

    pub fn into_reply(self) -> Reply {
        let mut reply = json_reply(self.code, &self.status_body());
        if let Some(secs) = self.retry_after {
            reply
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        reply
    }
}

/// The kind of a field error, and its `causes[].reason`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldErrorKind {
    Required,
    Invalid,
    Forbidden,
    TooLong,
    NotSupported,
}

impl FieldErrorKind {
    fn reason(self) -> &'static str {
        match self {
            FieldErrorKind::Required => "FieldValueRequired",
            FieldErrorKind::Invalid => "FieldValueInvalid",
            FieldErrorKind::Forbidden => "FieldValueForbidden",
            FieldErrorKind::TooLong => "FieldValueTooLong",
            FieldErrorKind::NotSupported => "FieldValueNotSupported",
        }
    }
}

/// One validation error, rendered `<field>: <body>` (docs/kubernetes-api.md §3.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub kind: FieldErrorKind,
    pub field: String,
    /// The rendered value for Invalid/NotSupported (already Go-quoted), if any.
    pub value: Option<String>,
    pub detail: String,
}

impl FieldError {
    pub fn required(field: impl Into<String>, detail: &str) -> Self {
        Self {
            kind: FieldErrorKind::Required,
            field: field.into(),
            value: None,
            detail: detail.into(),
        }
    }
    pub fn invalid(field: impl Into<String>, value: &str, detail: &str) -> Self {
        Self {
            kind: FieldErrorKind::Invalid,
            field: field.into(),
            value: Some(crate::gostr::quote(value)),
            detail: detail.into(),
        }
    }
    pub fn invalid_raw(field: impl Into<String>, value: String, detail: &str) -> Self {
        Self {
            kind: FieldErrorKind::Invalid,
            field: field.into(),
            value: Some(value),
            detail: detail.into(),
        }
    }
    pub fn forbidden(field: impl Into<String>, detail: &str) -> Self {
        Self {
            kind: FieldErrorKind::Forbidden,
            field: field.into(),
            value: None,
            detail: detail.into(),
        }
    }
    pub fn too_long(field: impl Into<String>, max: usize) -> Self {
        Self {
            kind: FieldErrorKind::TooLong,
            field: field.into(),
            value: None,
            detail: format!("may not be more than {max} bytes"),
        }
    }

    /// The part after `<field>: `, also the cause's `message`.
    pub fn body(&self) -> String {
        let head = match self.kind {
            FieldErrorKind::Required => "Required value",
            FieldErrorKind::Invalid => "Invalid value",
            FieldErrorKind::Forbidden => "Forbidden",
            FieldErrorKind::TooLong => "Too long",
            FieldErrorKind::NotSupported => "Unsupported value",
        };
        let mut s = head.to_owned();
        if let Some(v) = &self.value {
            s.push_str(": ");
            s.push_str(v);
        }
        if !self.detail.is_empty() {
            s.push_str(": ");
            s.push_str(&self.detail);
        }
        s
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.body())
    }
}

/// A JSON response with the server's `Content-Type` and trailing newline.
pub fn json_reply(code: u16, body: &Value) -> Reply {
    json_reply_with_type(code, body, "application/json")
}

pub fn json_reply_with_type(code: u16, body: &Value, content_type: &'static str) -> Reply {
    json_bytes_reply(
        code,
        serde_json::to_vec(body).expect("JSON values serialise"),
        content_type,
    )
}

/// [`json_reply_with_type`] for a body already serialized.
pub fn json_bytes_reply(code: u16, mut bytes: Vec<u8>, content_type: &'static str) -> Reply {
    bytes.push(b'\n');
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header(header::CONTENT_TYPE, content_type)
        .body(Bytes::from(bytes))
        .expect("static headers are valid")
}

/// A 200 with a protobuf body (`application/vnd.kubernetes.protobuf`), as written: unlike JSON,
/// no newline follows the message.
pub fn protobuf_reply(bytes: Vec<u8>) -> Reply {
    let mut reply = Response::new(Bytes::from(bytes));
    reply.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static(super::protobuf::CONTENT_TYPE),
    );
    reply
}

/// Plain-text replies (the unrouted 404, APF's 429).
pub fn text_reply(code: u16, text: &'static str) -> Reply {
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Bytes::from_static(text.as_bytes()))
        .expect("static headers are valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_joins_distinct_errors_in_brackets() {
        let e = ApiError::invalid(
            "Secret",
            "t",
            &[
                FieldError::required("data[tls.crt]", ""),
                FieldError::required("data[tls.key]", ""),
            ],
        );
        assert_eq!(
            e.message,
            "Secret \"t\" is invalid: [data[tls.crt]: Required value, data[tls.key]: Required value]"
        );
        assert_eq!(
            e.details.unwrap()["causes"][1],
            json!({"reason": "FieldValueRequired", "message": "Required value", "field": "data[tls.key]"})
        );
    }

    #[test]
    fn bare_internal_has_no_reason() {
        let body =
            ApiError::bare_internal("resourceVersion should not be set on objects to be created")
                .status_body();
        assert!(body.get("reason").is_none());
        assert_eq!(body["code"], 500);
    }
}
