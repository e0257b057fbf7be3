//! Resources (rooms, equipment) booked together with events: each reservation holds a resource
//! for a span of time, and the database refuses two overlapping reservations of one resource,
//! whichever process writes (see `store::resources`).

use jiff::Timestamp;

use crate::agenda::model::{AgendaError, checked_slug};
use crate::error::{ErrorCode, HasErrorCode};
use crate::ids::ResourceId;
use crate::store::{Store, StoreError};

/// A resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    /// Identifier.
    pub id: ResourceId,
    /// Unique short name.
    pub slug: String,
    /// Human name.
    pub label: String,
}

/// A resource held over a span by something (an event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    /// The resource.
    pub resource: ResourceId,
    /// What holds it, as `event-<id>`.
    pub owner: String,
    /// Start.
    pub starts_at: Timestamp,
    /// End.
    pub ends_at: Timestamp,
}

/// Errors of resources.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResourceError {
    /// Input breaks a rule.
    #[error("{0}")]
    Invalid(String),
    /// The slug is taken.
    #[error("a resource with slug {0:?} exists already")]
    SlugTaken(String),
    /// No such resource.
    #[error("resource not found")]
    NotFound,
    /// Storage failed.
    #[error("resources unavailable: {0}")]
    Unavailable(String),
}

impl HasErrorCode for ResourceError {
    fn code(&self) -> ErrorCode {
        match self {
            ResourceError::Invalid(_) => ErrorCode::BadUserInput,
            ResourceError::SlugTaken(_) => ErrorCode::Conflict,
            ResourceError::NotFound => ErrorCode::NotFound,
            ResourceError::Unavailable(_) => ErrorCode::Unavailable,
        }
    }
}

/// Creates and lists resources.
#[derive(Debug, Clone)]
pub struct Resources {
    store: Store,
}

impl Resources {
    /// Over the store.
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// Creates a resource.
    pub async fn create(&self, slug: &str, label: &str) -> Result<Resource, ResourceError> {
        let slug = checked_slug(slug, "slug").map_err(|e| match e {
            AgendaError::Invalid(m) => ResourceError::Invalid(m),
            other => ResourceError::Invalid(other.to_string()),
        })?;
        let label = label.trim();
        if label.is_empty() || label.chars().count() > 200 {
            return Err(ResourceError::Invalid("label must have 1 to 200 characters".into()));
        }
        let resource = Resource { id: ResourceId::new(), slug, label: label.to_owned() };
        match self.store.create_resource(&resource, Timestamp::now()).await {
            Ok(()) => Ok(resource),
            Err(StoreError::Duplicate(_)) => Err(ResourceError::SlugTaken(resource.slug)),
            Err(e) => Err(ResourceError::Unavailable(e.to_string())),
        }
    }

    /// Every resource, by label.
    pub async fn list(&self) -> Result<Vec<Resource>, ResourceError> {
        self.store.resources().await.map_err(|e| ResourceError::Unavailable(e.to_string()))
    }

    /// The reservations of a resource overlapping `from..to`, by start.
    pub async fn reservations(
        &self,
        resource: ResourceId,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<Reservation>, ResourceError> {
        self.store
            .reservations(resource, from, to)
            .await
            .map_err(|e| ResourceError::Unavailable(e.to_string()))
    }
}
