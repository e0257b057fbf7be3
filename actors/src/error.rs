//! Transport-neutral error codes, and the trait every error type implements to choose one.

/// What kind of failure an error is, independently of how it travels (GraphQL, CLI, logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The thing named does not exist, or the caller may not know it exists.
    NotFound,
    /// The request contradicts the current state (a duplicate, a stale version).
    Conflict,
    /// The caller is known but not allowed to do this.
    Forbidden,
    /// The caller is not known: no session, or an expired one.
    Unauthenticated,
    /// The input is malformed or breaks a rule of the domain.
    BadUserInput,
    /// No place is left, neither confirmed nor on the waiting list.
    Full,
    /// The caller asked too often; retrying later may work.
    RateLimited,
    /// A dependency is temporarily out of reach; retrying later may work.
    Unavailable,
    /// A bug or an unexpected failure; details are logged, never sent.
    Internal,
}

impl ErrorCode {
    /// The code as written in GraphQL `extensions.code` and in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::Conflict => "CONFLICT",
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::Unauthenticated => "UNAUTHENTICATED",
            ErrorCode::BadUserInput => "BAD_USER_INPUT",
            ErrorCode::Full => "FULL",
            ErrorCode::RateLimited => "RATE_LIMITED",
            ErrorCode::Unavailable => "UNAVAILABLE",
            ErrorCode::Internal => "INTERNAL_SERVER_ERROR",
        }
    }
}

/// Implemented by every error type of the domain, with an exhaustive match, so that a new variant
/// forces a decision about its code.
pub trait HasErrorCode {
    /// The transport-neutral code of this error.
    fn code(&self) -> ErrorCode;

    /// Named lists of identifiers a client needs to act on the error (the full events of a
    /// refused booking), sent beside the code; none by default.
    fn extensions(&self) -> Vec<(&'static str, Vec<String>)> {
        Vec::new()
    }
}
