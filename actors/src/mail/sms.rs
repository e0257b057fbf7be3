//! Text messages: the [`SmsSender`] interface and its HTTP gateway implementation, which posts
//! `{"message", "from", "to": [...]}` as JSON (the shape of Publik's SMS connectors) to a
//! configured URL, with an optional bearer token. Messages reach it through the same durable
//! outbox as email.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// What the mailer needs from an SMS provider.
pub trait SmsSender: Send + Sync {
    /// Sends `text` to every number of `to` (E.164); an error is retried later.
    fn send<'a>(
        &'a self,
        to: &'a [String],
        text: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;
}

/// An SMS gateway reached over HTTP(S).
pub struct HttpSmsGateway {
    client: reqwest::Client,
    url: reqwest::Url,
    token: Option<String>,
    from: String,
}

impl HttpSmsGateway {
    /// A gateway at `url` (http or https), authenticated by `token` if given, sending as `from`.
    pub fn new(url: &str, token: Option<String>, from: String) -> Result<Self, String> {
        let url: reqwest::Url = url.parse().map_err(|e| format!("SMS gateway URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err("SMS gateway URL must be http:// or https://".into());
        }
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .map_err(|e| format!("SMS gateway client: {e}"))?;
        Ok(Self { client, url, token, from })
    }
}

impl SmsSender for HttpSmsGateway {
    fn send<'a>(
        &'a self,
        to: &'a [String],
        text: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(async move {
            let body = serde_json::json!({ "message": text, "from": self.from, "to": to });
            let mut request = self.client.post(self.url.clone()).json(&body);
            if let Some(token) = &self.token {
                request = request.bearer_auth(token);
            }
            // Errors name the gateway's status, never the token.
            let response = request.send().await.map_err(|e| format!("SMS gateway: {e}"))?;
            let status = response.status();
            if status.is_success() { Ok(()) } else { Err(format!("SMS gateway answered {status}")) }
        })
    }
}

/// A French or international phone number in E.164 form (`+33612345678`), or `None` when it is
/// not one. National French numbers (`06 12 34 56 78`) are accepted.
pub fn normalise_phone(input: &str) -> Option<String> {
    let compact: String =
        input.chars().filter(|c| !matches!(c, ' ' | '.' | '-' | '(' | ')')).collect();
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if let Some(rest) = compact.strip_prefix('+') {
        return (digits(rest) && (8..=15).contains(&rest.len()) && !rest.starts_with('0'))
            .then(|| compact.clone());
    }
    if let Some(rest) = compact.strip_prefix("00") {
        return (digits(rest) && (8..=15).contains(&rest.len())).then(|| format!("+{rest}"));
    }
    if compact.len() == 10 && compact.starts_with('0') && digits(&compact) {
        return Some(format!("+33{}", &compact[1..]));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::normalise_phone;

    #[test]
    fn phones_are_normalised_to_e164() {
        assert_eq!(normalise_phone("06 12 34 56 78").as_deref(), Some("+33612345678"));
        assert_eq!(normalise_phone("+33 6 12 34 56 78").as_deref(), Some("+33612345678"));
        assert_eq!(normalise_phone("0032 470 12 34 56").as_deref(), Some("+32470123456"));
        assert_eq!(normalise_phone("12345"), None);
        assert_eq!(normalise_phone("06 12 34 56 7a"), None);
        assert_eq!(normalise_phone("+0612345678"), None);
    }
}
