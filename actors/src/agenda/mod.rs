//! Events agendas: the rules (`model`), the actor that owns each agenda (`actor`), its typed
//! messages (`messages`), and the handle and registry the rest of Guichet uses (`handle`).

mod actor;
mod handle;
mod messages;
pub mod model;
pub mod recurrence;
pub mod rules;
#[cfg(test)]
mod tests;

pub use handle::{AgendaHandle, AgendaRegistry, EventView};
