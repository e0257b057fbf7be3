//! Guichet's GraphQL API: the only crate that knows GraphQL. Resolvers parse arguments, check
//! the caller against the single access policy, call a handle and convert the result.
//!
//! - `query`, `mutation`, `subscription`: the operations, split per aggregate and merged here;
//!   `events` holds recurrences, listings and attendance of events agendas, `meetings` the
//!   types and operations of meetings agendas, `demands` forms, workflows and demands.
//! - `types`, `scalars`: the wire types, converted from domain views.
//! - `context`: the caller of a request.
//! - `error`: the single translation of errors into GraphQL errors with `extensions.code`.
//!
//! Invariant: no resolver returns an error without a code (`.gql()` everywhere).

pub mod context;
pub mod demands;
pub mod error;
pub mod events;
pub mod meetings;
pub mod mutation;
pub mod query;
pub mod reception;
pub mod scalars;
pub mod subscription;
pub mod types;
pub mod unavailability;

use actors::Services;
use async_graphql::{MergedObject, MergedSubscription, SDLExportOptions, Schema};

pub use context::Caller;

/// The query root.
#[derive(MergedObject, Default)]
pub struct QueryRoot(
    query::AccountQuery,
    query::AgendaQuery,
    events::EventsQuery,
    events::DataSourceQuery,
    events::ResourceQuery,
    meetings::MeetingsQuery,
    unavailability::UnavailabilityQuery,
    demands::DemandsQuery,
);

/// The mutation root.
#[derive(MergedObject, Default)]
pub struct MutationRoot(
    mutation::AccountMutation,
    mutation::AgendaMutation,
    events::EventsMutation,
    events::ResourceMutation,
    meetings::MeetingsMutation,
    unavailability::UnavailabilityMutation,
    demands::DemandsMutation,
    reception::ReceptionMutation,
);

/// The subscription root.
#[derive(MergedSubscription, Default)]
pub struct SubscriptionRoot(
    subscription::AgendaSubscription,
    meetings::MeetingsSubscription,
    demands::DemandsSubscription,
    reception::ReceptionSubscription,
);

/// Guichet's schema.
pub type AppSchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

/// Deepest selection accepted.
pub const MAX_DEPTH: usize = 16;
/// Most expensive query accepted (one point per field).
pub const MAX_COMPLEXITY: usize = 2_000;

/// Builds the schema over the running services.
pub fn build_schema(services: Services) -> AppSchema {
    Schema::build(QueryRoot::default(), MutationRoot::default(), SubscriptionRoot::default())
        .data(services)
        .limit_depth(MAX_DEPTH)
        .limit_complexity(MAX_COMPLEXITY)
        .limit_recursive_depth(32)
        .limit_directives(8)
        .finish()
}

/// The schema in SDL, fields sorted, as committed in `schema.graphql`.
pub fn sdl() -> String {
    Schema::build(QueryRoot::default(), MutationRoot::default(), SubscriptionRoot::default())
        .finish()
        .sdl_with_options(SDLExportOptions::new().sorted_fields().sorted_enum_items())
}

#[cfg(test)]
mod tests {
    /// The committed SDL is what the code exports; on a mismatch the file is rewritten and the
    /// test fails, so that every API change shows as a diff.
    #[test]
    fn schema_graphql_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql");
        let current = super::sdl();
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        if committed != current {
            std::fs::write(path, &current).unwrap();
            panic!("schema.graphql was stale and has been rewritten: review and commit it");
        }
    }
}
