//! Meetings agendas: meeting types, desks, opening periods and exceptions (`model`), French
//! public holidays (`holidays`), the actor that owns each meetings agenda and decides every
//! booking and hold (`actor`), its messages (`messages`), and the registry the API uses
//! (`handle`).

mod actor;
mod handle;
pub mod holidays;
mod messages;
pub mod model;
#[cfg(test)]
mod tests;

pub use handle::{MeetingsHandle, MeetingsRegistry};
