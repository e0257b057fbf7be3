//! Outgoing email: a durable outbox in the store, drained by one [`Mailer`] task through lettre.
//!
//! Mail never blocks or fails the operation that caused it: the operation only writes the mail
//! into the outbox in its own transaction; the mailer sends it later, retrying with backoff.

use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tokio::sync::{Notify, watch};

use crate::ids::{AccountId, MailId};
use crate::store::Store;

pub mod sms;

pub use sms::{HttpSmsGateway, SmsSender};

/// How a message travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// Email through SMTP.
    Email,
    /// A text message through the SMS gateway, to the accounts' phone numbers; its body is the
    /// text and its subject is not sent.
    Sms,
}

impl Channel {
    /// Storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Sms => "sms",
        }
    }

    /// Parses a storage name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "email" => Some(Channel::Email),
            "sms" => Some(Channel::Sms),
            _ => None,
        }
    }
}

/// A message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMail {
    /// Identifier.
    pub id: MailId,
    /// Email or SMS.
    pub channel: Channel,
    /// Recipients by address (administrators' notification addresses), all in one message.
    pub to: Vec<String>,
    /// Recipients by account, each sent a message of their own: their address is looked up when
    /// sending, so that the outbox holds no more personal data than it needs.
    pub to_accounts: Vec<AccountId>,
    /// Subject.
    pub subject: String,
    /// Plain-text body.
    pub body: String,
    /// When it was queued.
    pub created_at: Timestamp,
}

/// Where a queued mail stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailStatus {
    /// Waiting for its (next) attempt.
    Queued,
    /// Accepted by the SMTP server.
    Sent,
    /// Given up after too many attempts.
    Failed,
    /// No SMTP server is configured: kept in the outbox and logged.
    Held,
}

impl MailStatus {
    /// Storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            MailStatus::Queued => "queued",
            MailStatus::Sent => "sent",
            MailStatus::Failed => "failed",
            MailStatus::Held => "held",
        }
    }

    /// Parses a storage name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "queued" => Some(MailStatus::Queued),
            "sent" => Some(MailStatus::Sent),
            "failed" => Some(MailStatus::Failed),
            "held" => Some(MailStatus::Held),
            _ => None,
        }
    }
}

/// A mail of the outbox with its delivery state, as shown to administrators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    /// The mail.
    pub mail: OutgoingMail,
    /// Delivery state.
    pub status: MailStatus,
    /// Attempts made.
    pub attempts: u32,
    /// The last failure, if any.
    pub last_error: Option<String>,
    /// When it was accepted by the server.
    pub sent_at: Option<Timestamp>,
}

/// Attempts before a mail is marked failed.
pub const MAX_ATTEMPTS: u32 = 8;

/// The delay before attempt `attempts + 1`: 2, 4, 8... seconds, at most ten minutes.
pub fn backoff(attempts: u32) -> SignedDuration {
    let secs = 2i64.saturating_pow(attempts.clamp(1, 10)).min(600);
    SignedDuration::from_secs(secs)
}

/// Errors of mail configuration.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The SMTP URL or sender address is not usable.
    #[error("invalid mail configuration: {0}")]
    Config(String),
}

/// Mail settings.
#[derive(Debug, Clone)]
pub struct MailConfig {
    /// `smtp://[user:pass@]host:port[?tls=required]` or `smtps://...`; `None` holds mail.
    pub smtp_url: Option<String>,
    /// The From address.
    pub from: String,
}

/// Wakes the mailer when new mail is queued.
#[derive(Debug, Clone, Default)]
pub struct MailNotifier(Arc<Notify>);

impl MailNotifier {
    /// Tells the mailer to look at the outbox now.
    pub fn wake(&self) {
        self.0.notify_one();
    }
}

/// Drains the outbox. One per process; several processes on one database share the work safely
/// because each mail is claimed by a conditional update before it is sent.
pub struct Mailer {
    store: Store,
    transport: Option<AsyncSmtpTransport<Tokio1Executor>>,
    sms: Option<Arc<dyn SmsSender>>,
    from: Mailbox,
    notifier: MailNotifier,
}

impl Mailer {
    /// Builds the mailer; fails on an unusable URL or sender.
    pub fn new(
        store: Store,
        config: &MailConfig,
        notifier: MailNotifier,
    ) -> Result<Self, MailError> {
        let from: Mailbox =
            config.from.parse().map_err(|e| MailError::Config(format!("sender address: {e}")))?;
        let transport = match &config.smtp_url {
            None => None,
            Some(url) => Some(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    // The URL may hold a password: never echo it back.
                    .map_err(|e| {
                        MailError::Config(format!("SMTP URL: {}", redact(&e.to_string(), url)))
                    })?
                    .timeout(Some(Duration::from_secs(20)))
                    .build(),
            ),
        };
        Ok(Self { store, transport, sms: None, from, notifier })
    }

    /// Sends text messages through `sender`; without one they are held in the outbox.
    pub fn with_sms(mut self, sender: Arc<dyn SmsSender>) -> Self {
        self.sms = Some(sender);
        self
    }

    /// Runs until `shutdown` turns true, then returns after the mail in hand is done.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        loop {
            if *shutdown.borrow() {
                return;
            }
            let next_due = match self.drain_once().await {
                Ok(next) => next,
                Err(e) => {
                    tracing::warn!(error = %e, "outbox: store unavailable, retrying");
                    Some(Duration::from_secs(2))
                }
            };
            let wait = next_due.unwrap_or(Duration::from_secs(30)).min(Duration::from_secs(30));
            tokio::select! {
                _ = self.notifier.0.notified() => {}
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    /// Sends every due mail; returns how long until the next one is due.
    async fn drain_once(&self) -> Result<Option<Duration>, crate::store::StoreError> {
        loop {
            let now = Timestamp::now();
            let due = self.store.due_mails(now, 32).await?;
            if due.is_empty() {
                return Ok(self
                    .store
                    .next_mail_due()
                    .await?
                    .map(|t| Duration::try_from(t.duration_since(now)).unwrap_or_default()));
            }
            for entry in due {
                self.deliver(entry).await?;
            }
        }
    }

    async fn deliver(&self, entry: OutboxEntry) -> Result<(), crate::store::StoreError> {
        let now = Timestamp::now();
        let id = entry.mail.id;
        let configured = match entry.mail.channel {
            Channel::Email => self.transport.is_some(),
            Channel::Sms => self.sms.is_some(),
        };
        if !configured {
            tracing::info!(mail = %id, channel = entry.mail.channel.as_str(), subject = %entry.mail.subject,
                "outbox: no server configured for this channel, message held");
            return self
                .store
                .mark_mail(id, MailStatus::Held, entry.attempts, None, now, None)
                .await;
        }
        let attempts = entry.attempts + 1;
        let result = match (entry.mail.channel, &self.transport, &self.sms) {
            (Channel::Email, Some(transport), _) => self.send(transport, &entry).await,
            (Channel::Sms, _, Some(sms)) => self.send_sms(sms.as_ref(), &entry).await,
            _ => Err("no server for this channel".to_owned()),
        };
        match result {
            Ok(()) => {
                tracing::info!(mail = %id, attempts, "outbox: mail sent");
                self.store.mark_mail(id, MailStatus::Sent, attempts, None, now, Some(now)).await
            }
            Err(error) if attempts >= MAX_ATTEMPTS => {
                tracing::error!(mail = %id, attempts, %error, "outbox: giving up");
                self.store.mark_mail(id, MailStatus::Failed, attempts, Some(error), now, None).await
            }
            Err(error) => {
                let next = now + backoff(attempts);
                tracing::warn!(mail = %id, attempts, %error, "outbox: send failed, will retry");
                self.store
                    .mark_mail(id, MailStatus::Queued, attempts, Some(error), next, None)
                    .await
            }
        }
    }

    /// Sends the message to its addresses, then one message to each account (so that citizens
    /// never see each other's addresses). A retry after a partial failure sends again to those
    /// already served: a mail may arrive twice, never not at all.
    async fn send(
        &self,
        transport: &AsyncSmtpTransport<Tokio1Executor>,
        entry: &OutboxEntry,
    ) -> Result<(), String> {
        let mail = &entry.mail;
        if !mail.to.is_empty() {
            let message = self.build(mail, &mail.to, "")?;
            transport.send(message).await.map_err(|e| e.to_string())?;
        }
        let addresses = self
            .store
            .account_emails(&mail.to_accounts)
            .await
            .map_err(|e| format!("account addresses: {e}"))?;
        for (n, address) in addresses.iter().enumerate() {
            let message = self.build(mail, std::slice::from_ref(address), &format!(".{n}"))?;
            transport.send(message).await.map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Sends a text message to the accounts' phone numbers (accounts without one are skipped).
    async fn send_sms(&self, sms: &dyn SmsSender, entry: &OutboxEntry) -> Result<(), String> {
        let phones = self
            .store
            .account_phones(&entry.mail.to_accounts)
            .await
            .map_err(|e| format!("account phones: {e}"))?;
        if phones.is_empty() {
            return Ok(());
        }
        sms.send(&phones, &entry.mail.body).await
    }

    fn build(&self, mail: &OutgoingMail, to: &[String], part: &str) -> Result<Message, String> {
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(mail.subject.clone())
            .message_id(Some(format!("<{}{part}@guichet>", mail.id)));
        for to in to {
            builder =
                builder.to(to.parse::<Mailbox>().map_err(|e| format!("recipient {to:?}: {e}"))?);
        }
        builder.body(mail.body.clone()).map_err(|e| e.to_string())
    }
}

/// Removes the password of a URL from a message that may quote it.
fn redact(message: &str, url: &str) -> String {
    match url.split_once("://").and_then(|(_, rest)| rest.split_once('@')) {
        Some((userinfo, _)) => match userinfo.split_once(':') {
            Some((_, password)) if !password.is_empty() => message.replace(password, "***"),
            _ => message.to_owned(),
        },
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff(1), SignedDuration::from_secs(2));
        assert_eq!(backoff(3), SignedDuration::from_secs(8));
        assert_eq!(backoff(30), SignedDuration::from_secs(600));
    }

    #[test]
    fn passwords_are_redacted() {
        let url = "smtp://user:s3cret@mail.test:25";
        assert_eq!(redact("cannot use s3cret here", url), "cannot use *** here");
        assert_eq!(redact("plain", "smtp://mail.test"), "plain");
    }
}
