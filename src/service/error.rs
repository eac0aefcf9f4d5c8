//! The protocol-neutral RPC error: a Connect/gRPC code and a message. Each protocol renders it.

use std::fmt;

/// The status codes this service produces, with their gRPC numbers and Connect names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    Canceled,
    Unknown,
    InvalidArgument,
    DeadlineExceeded,
    NotFound,
    AlreadyExists,
    ResourceExhausted,
    Aborted,
    Unimplemented,
    Internal,
    Unavailable,
    PermissionDenied,
    Unauthenticated,
}

impl Code {
    /// The gRPC status number of the code (the numbers are the gRPC spec's; rendering a status
    /// is the transport's business).
    pub fn grpc_number(self) -> i32 {
        match self {
            Code::Canceled => 1,
            Code::Unknown => 2,
            Code::InvalidArgument => 3,
            Code::DeadlineExceeded => 4,
            Code::NotFound => 5,
            Code::AlreadyExists => 6,
            Code::PermissionDenied => 7,
            Code::ResourceExhausted => 8,
            Code::Aborted => 10,
            Code::Unimplemented => 12,
            Code::Internal => 13,
            Code::Unavailable => 14,
            Code::Unauthenticated => 16,
        }
    }

    /// Every code, in gRPC number order (a code added to the enum belongs here too: the
    /// numbers are read back through this list).
    pub const ALL: [Code; 13] = [
        Code::Canceled,
        Code::Unknown,
        Code::InvalidArgument,
        Code::DeadlineExceeded,
        Code::NotFound,
        Code::AlreadyExists,
        Code::PermissionDenied,
        Code::ResourceExhausted,
        Code::Aborted,
        Code::Unimplemented,
        Code::Internal,
        Code::Unavailable,
        Code::Unauthenticated,
    ];

    /// The code for a gRPC status number, when this service uses it.
    pub fn from_grpc(n: i32) -> Option<Code> {
        Code::ALL.into_iter().find(|c| c.grpc_number() == n)
    }

    /// The Connect protocol's name for the code.
    pub fn connect_name(self) -> &'static str {
        match self {
            Code::Canceled => "canceled",
            Code::Unknown => "unknown",
            Code::InvalidArgument => "invalid_argument",
            Code::DeadlineExceeded => "deadline_exceeded",
            Code::NotFound => "not_found",
            Code::AlreadyExists => "already_exists",
            Code::ResourceExhausted => "resource_exhausted",
            Code::Aborted => "aborted",
            Code::Unimplemented => "unimplemented",
            Code::Internal => "internal",
            Code::Unavailable => "unavailable",
            Code::PermissionDenied => "permission_denied",
            Code::Unauthenticated => "unauthenticated",
        }
    }

    /// The HTTP status the Connect protocol uses for the code.
    pub fn http_status(self) -> u16 {
        match self {
            Code::Canceled => 499,
            Code::Unknown | Code::Internal => 500,
            Code::InvalidArgument => 400,
            Code::DeadlineExceeded => 504,
            Code::NotFound => 404,
            Code::AlreadyExists | Code::Aborted => 409,
            Code::ResourceExhausted => 429,
            Code::Unimplemented => 501,
            Code::Unavailable => 503,
            Code::PermissionDenied => 403,
            Code::Unauthenticated => 401,
        }
    }
}

/// The most characters of a client's input that an error text repeats back.
pub const MAX_ECHO_CHARS: usize = 256;

/// A client's input as error texts repeat it: whole when short, else its first
/// [`MAX_ECHO_CHARS`] characters and a note of how much was left out (a 1 MB name must not
/// become a 1 MB `grpc-message`).
pub fn echo(input: &str) -> std::borrow::Cow<'_, str> {
    match input.char_indices().nth(MAX_ECHO_CHARS) {
        None => std::borrow::Cow::Borrowed(input),
        Some((cut, _)) => std::borrow::Cow::Owned(format!(
            "{}... ({} more bytes)",
            &input[..cut],
            input.len() - cut
        )),
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RpcError {
    pub code: Code,
    pub message: String,
}

impl RpcError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        RpcError {
            code,
            message: message.into(),
        }
    }
    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new(Code::InvalidArgument, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(Code::NotFound, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(Code::Internal, message)
    }
}

impl fmt::Display for RpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.connect_name(), self.message)
    }
}

impl std::error::Error for RpcError {}

#[cfg(test)]
mod code_tests {
    use super::*;

    #[test]
    fn grpc_numbers_round_trip() {
        for n in 0..20 {
            if let Some(code) = Code::from_grpc(n) {
                assert_eq!(code.grpc_number(), n);
            }
        }
        assert_eq!(Code::from_grpc(16), Some(Code::Unauthenticated));
        assert_eq!(Code::from_grpc(0), None, "0 is OK, not an error code");
        // Each code once, in number order.
        assert!(
            Code::ALL
                .windows(2)
                .all(|w| w[0].grpc_number() < w[1].grpc_number())
        );
    }
}

#[cfg(test)]
mod echo_tests {
    use super::*;

    #[test]
    fn echo_keeps_short_input_and_truncates_long_input_on_a_char_boundary() {
        assert_eq!(echo("short"), "short");
        let exact = "é".repeat(MAX_ECHO_CHARS);
        assert_eq!(echo(&exact), exact.as_str());
        let long = "é".repeat(MAX_ECHO_CHARS + 10);
        let e = echo(&long);
        assert!(e.starts_with(&"é".repeat(MAX_ECHO_CHARS)));
        assert!(e.ends_with("... (20 more bytes)"), "{e}");
    }
}
