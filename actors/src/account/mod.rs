//! Accounts: registration, password verification (argon2id), roles.

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use jiff::Timestamp;

use crate::access::Roles;
use crate::error::{ErrorCode, HasErrorCode};
use crate::ids::AccountId;
use crate::store::{AccountRecord, Store, StoreError};
use crate::time::to_micros;

/// Shortest accepted password.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest accepted password (hashing cost is bounded by it).
pub const MAX_PASSWORD_CHARS: usize = 256;

/// What a person gives to open an account.
#[derive(Debug, Clone)]
pub struct NewAccount {
    /// Email, used to sign in.
    pub email: String,
    /// Password in clear; hashed at once and never stored or logged.
    pub password: String,
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
}

/// An account as the API shows it (no password hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountView {
    /// Identifier.
    pub id: AccountId,
    /// Email.
    pub email: String,
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
    /// Roles.
    pub roles: Roles,
    /// Phone number for text messages (E.164).
    pub phone: Option<String>,
}

impl TryFrom<&AccountRecord> for AccountView {
    type Error = AccountError;

    fn try_from(r: &AccountRecord) -> Result<Self, AccountError> {
        Ok(Self {
            id: r.account_id().map_err(AccountError::Store)?,
            email: r.email.clone(),
            first_name: r.first_name.clone(),
            last_name: r.last_name.clone(),
            roles: r.roles(),
            phone: r.phone.clone(),
        })
    }
}

/// Errors of accounts.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AccountError {
    /// Input breaks a rule.
    #[error("{0}")]
    Invalid(String),
    /// An account exists with this email.
    #[error("an account exists with this email")]
    EmailTaken,
    /// Unknown email or wrong password (never says which).
    #[error("wrong email or password")]
    BadCredentials,
    /// No such account.
    #[error("account not found")]
    NotFound,
    /// Storage failed.
    #[error(transparent)]
    Store(StoreError),
    /// Hashing failed.
    #[error("password hashing failed: {0}")]
    Hashing(String),
}

impl HasErrorCode for AccountError {
    fn code(&self) -> ErrorCode {
        match self {
            AccountError::Invalid(_) => ErrorCode::BadUserInput,
            AccountError::EmailTaken => ErrorCode::Conflict,
            AccountError::BadCredentials => ErrorCode::Unauthenticated,
            AccountError::NotFound => ErrorCode::NotFound,
            AccountError::Store(e) => e.code(),
            AccountError::Hashing(_) => ErrorCode::Internal,
        }
    }
}

/// Normalises an email for lookup: trimmed and lower-cased.
pub fn normalise_email(email: &str) -> String {
    email.trim().to_lowercase()
}

fn check_name(name: &str, field: &str) -> Result<String, AccountError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(AccountError::Invalid(format!("{field} must have 1 to 100 characters")));
    }
    Ok(name.to_owned())
}

fn check_password(password: &str) -> Result<(), AccountError> {
    let n = password.chars().count();
    if !(MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&n) {
        return Err(AccountError::Invalid(format!(
            "password must have {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters"
        )));
    }
    Ok(())
}

/// Hashes a password with argon2id, off the async threads.
async fn hash_password(password: String) -> Result<String, AccountError> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| AccountError::Hashing(e.to_string()))
    })
    .await
    .map_err(|e| AccountError::Hashing(e.to_string()))?
}

async fn verify_password(password: String, hash: String) -> bool {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash)
            .map(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false)
}

/// A hash verified when the email is unknown, so that response times do not reveal which emails
/// have accounts. Computed once, from a password nobody knows.
fn decoy_hash() -> String {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY
        .get_or_init(|| {
            let salt = SaltString::generate(&mut OsRng);
            let secret = salt.as_str().to_owned();
            Argon2::default()
                .hash_password(secret.as_bytes(), &salt)
                .map(|h| h.to_string())
                .unwrap_or_default()
        })
        .clone()
}

/// Account operations.
#[derive(Debug, Clone)]
pub struct Accounts {
    store: Store,
}

impl Accounts {
    /// Accounts stored in `store`.
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// Opens an account with the given roles.
    pub async fn register(
        &self,
        input: NewAccount,
        roles: Roles,
    ) -> Result<AccountView, AccountError> {
        let email = normalise_email(&input.email);
        if email.len() > 254 || email.parse::<lettre::Address>().is_err() {
            return Err(AccountError::Invalid("email is not a valid address".into()));
        }
        let first_name = check_name(&input.first_name, "firstName")?;
        let last_name = check_name(&input.last_name, "lastName")?;
        check_password(&input.password)?;
        let record = AccountRecord {
            id: AccountId::new().to_string(),
            email,
            password_hash: hash_password(input.password).await?,
            first_name,
            last_name,
            admin: roles.admin,
            agent_roles: roles.agent_roles,
            phone: None,
            calendar_feed: None,
            reception_line: None,
            notify_by: None,
            created_us: to_micros(Timestamp::now()),
        };
        match self.store.create_account(&record).await {
            Ok(()) => AccountView::try_from(&record),
            Err(StoreError::Duplicate(_)) => Err(AccountError::EmailTaken),
            Err(e) => Err(AccountError::Store(e)),
        }
    }

    /// Checks an email and password.
    pub async fn verify(&self, email: &str, password: &str) -> Result<AccountView, AccountError> {
        if password.chars().count() > MAX_PASSWORD_CHARS {
            return Err(AccountError::BadCredentials);
        }
        let record = self
            .store
            .account_by_email(&normalise_email(email))
            .await
            .map_err(AccountError::Store)?;
        let hash = match &record {
            Some(r) => r.password_hash.clone(),
            None => tokio::task::spawn_blocking(decoy_hash).await.unwrap_or_default(),
        };
        let ok = verify_password(password.to_owned(), hash).await;
        match record {
            Some(r) if ok => AccountView::try_from(&r),
            _ => Err(AccountError::BadCredentials),
        }
    }

    /// One account.
    pub async fn get(&self, id: AccountId) -> Result<AccountView, AccountError> {
        let record = self.store.account(id).await.map_err(AccountError::Store)?;
        AccountView::try_from(&record.ok_or(AccountError::NotFound)?)
    }

    /// Replaces the roles of an account (effective for its next sessions).
    pub async fn set_roles(
        &self,
        id: AccountId,
        roles: Roles,
    ) -> Result<AccountView, AccountError> {
        for r in &roles.agent_roles {
            if r.trim().is_empty() || r.len() > 64 {
                return Err(AccountError::Invalid(
                    "agent roles must have 1 to 64 characters".into(),
                ));
            }
        }
        if !self.store.set_roles(id, &roles).await.map_err(AccountError::Store)? {
            return Err(AccountError::NotFound);
        }
        self.get(id).await
    }

    /// Sets the phone number text messages go to (normalised to E.164), or clears it.
    pub async fn set_phone(
        &self,
        id: AccountId,
        phone: Option<&str>,
    ) -> Result<AccountView, AccountError> {
        let phone = match phone.map(str::trim).filter(|p| !p.is_empty()) {
            None => None,
            Some(p) => Some(crate::mail::sms::normalise_phone(p).ok_or_else(|| {
                AccountError::Invalid(format!("{p:?} is not a phone number like +33612345678"))
            })?),
        };
        if !self.store.set_phone(id, phone.as_deref()).await.map_err(AccountError::Store)? {
            return Err(AccountError::NotFound);
        }
        self.get(id).await
    }

    /// Makes a new secret for the account's calendar feed (the old one stops working) and
    /// returns it; only its hash is stored.
    pub async fn renew_calendar_feed(&self, id: AccountId) -> Result<String, AccountError> {
        let secret =
            crate::session::random_token().map_err(|e| AccountError::Hashing(e.to_string()))?;
        let hash = crate::session::token_hash(&secret);
        if !self.store.set_calendar_feed(id, &hash).await.map_err(AccountError::Store)? {
            return Err(AccountError::NotFound);
        }
        Ok(secret)
    }

    /// The account whose calendar feed has this secret.
    pub async fn by_calendar_feed(&self, secret: &str) -> Result<AccountView, AccountError> {
        let hash = crate::session::token_hash(secret);
        let record =
            self.store.account_by_calendar_feed(&hash).await.map_err(AccountError::Store)?;
        AccountView::try_from(&record.ok_or(AccountError::NotFound)?)
    }

    /// True when no account exists yet.
    pub async fn is_empty(&self) -> Result<bool, AccountError> {
        Ok(self.store.count_accounts().await.map_err(AccountError::Store)? == 0)
    }
}
