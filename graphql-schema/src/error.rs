//! The single place where Rust errors become GraphQL errors, each with `extensions.code`.

use std::fmt::Display;

use actors::{ErrorCode, HasErrorCode};
use async_graphql::ErrorExtensions;

/// Adds `.gql()` to any result whose error has a code.
pub trait GqlResultExt<T> {
    /// Converts the error into a GraphQL error with its code; internal details are logged and
    /// replaced by a generic message.
    fn gql(self) -> async_graphql::Result<T>;
}

impl<T, E: HasErrorCode + Display> GqlResultExt<T> for Result<T, E> {
    fn gql(self) -> async_graphql::Result<T> {
        self.map_err(|e| to_gql(&e))
    }
}

/// Converts one error.
pub fn to_gql<E: HasErrorCode + Display>(e: &E) -> async_graphql::Error {
    let code = e.code();
    let message = match code {
        ErrorCode::Internal => {
            tracing::error!(error = %e, "internal error");
            "internal error".to_owned()
        }
        ErrorCode::Unavailable => {
            tracing::warn!(error = %e, "service unavailable");
            "service temporarily unavailable, try again".to_owned()
        }
        _ => e.to_string(),
    };
    let mut error = coded(code, message);
    // For instance `fullEventIds` beside FULL, so that a client can show which events are full.
    for (name, ids) in e.extensions() {
        error = error.extend_with(|_, ext| ext.set(name, ids));
    }
    error
}

/// A GraphQL error with a code and a message.
pub fn coded(code: ErrorCode, message: impl Into<String>) -> async_graphql::Error {
    async_graphql::Error::new(message).extend_with(|_, ext| ext.set("code", code.as_str()))
}

/// Input that the API itself refuses before reaching the domain (a malformed id, a bad date).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

impl HasErrorCode for BadInput {
    fn code(&self) -> ErrorCode {
        ErrorCode::BadUserInput
    }
}

/// Turns an error not raised by a resolver (GraphQL parse or validation) into one with a code.
pub fn ensure_code(mut error: async_graphql::ServerError) -> async_graphql::ServerError {
    let has_code = error.extensions.as_ref().is_some_and(|ext| ext.get("code").is_some());
    if !has_code {
        let mut ext = error.extensions.take().unwrap_or_default();
        ext.set("code", ErrorCode::BadUserInput.as_str());
        error.extensions = Some(ext);
    }
    error
}
