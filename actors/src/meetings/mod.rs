//! Meetings agendas: meeting types, desks, opening periods and exceptions (`model`), French
//! public holidays (`holidays`), the actor that owns each meetings agenda and decides every
//! booking and hold (`actor`), its messages (`messages`), and the registry the API uses
//! (`handle`); virtual agendas, the union of meetings agendas (`virtual_agenda` for the rules,
//! `virtual_handle` for their actor and the routing to members).

mod actor;
mod handle;
pub mod holidays;
mod messages;
pub mod model;
#[cfg(test)]
mod tests;
pub mod unavailability;
pub mod virtual_agenda;
mod virtual_handle;

pub use handle::{MeetingsHandle, MeetingsRegistry};
pub use virtual_handle::{SlotAgenda, VirtualConfig, VirtualHandle};
