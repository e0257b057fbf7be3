//! End-to-end tests of Guichet: the real server on an ephemeral port with a fresh data folder,
//! real HTTP and websocket clients, a real SMTP server on loopback, the real binary killed with
//! SIGKILL. One test binary; `support` holds the harness.

// Test modules share helpers with `pub`, which is crate-private in a test binary anyway.
#![cfg_attr(test, allow(unreachable_pub))]

#[cfg(test)]
mod support;

#[cfg(test)]
mod bookings;
#[cfg(test)]
mod demands;
#[cfg(test)]
mod durability;
#[cfg(test)]
mod events;
#[cfg(test)]
mod feeds;
#[cfg(test)]
mod mail;
#[cfg(test)]
mod meetings;
#[cfg(test)]
mod safety;
#[cfg(test)]
mod sessions;
