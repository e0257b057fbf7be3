//! Tracking codes: a code alone opens one demand, so it carries 128 random bits (w.c.s.' eight
//! consonants carry 34.6, found by a botnet in about a day), is stored only as a SHA-256 hash,
//! and lookups are rate-limited per client.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// Crockford's base 32: no I, L, O, U, so that codes read aloud or copied by hand survive.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// A fresh code: 128 random bits as 26 characters, in groups of five for reading aloud
/// (`7K2QD-...`).
pub fn new_code() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)?;
    let mut value = u128::from_be_bytes(bytes);
    let mut chars = Vec::with_capacity(26);
    for _ in 0..26 {
        chars.push(ALPHABET[(value & 31) as usize]);
        value >>= 5;
    }
    let groups: Vec<String> =
        chars.chunks(5).map(|c| c.iter().map(|&b| b as char).collect()).collect();
    Ok(groups.join("-"))
}

/// The code as compared: upper case, without separators, with the letters people confuse
/// mapped as Crockford says (O → 0, I and L → 1). `None` when it cannot be a code.
pub fn normalise(code: &str) -> Option<String> {
    let mut out = String::with_capacity(26);
    for c in code.chars() {
        let c = match c.to_ascii_uppercase() {
            ' ' | '-' | '.' => continue,
            'O' => '0',
            'I' | 'L' => '1',
            c if ALPHABET.contains(&(c as u8)) && c.is_ascii() => c,
            _ => return None,
        };
        out.push(c);
    }
    (out.len() == 26).then_some(out)
}

/// What the store keeps of a code.
pub fn hash(normalised: &str) -> String {
    hex::encode(Sha256::digest(normalised.as_bytes()))
}

/// Per-client limits on lookups: a burst, a steady rate, and a daily cap.
#[derive(Debug)]
pub struct LookupLimiter {
    burst: u32,
    every: Duration,
    daily: u32,
    clients: Mutex<HashMap<String, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    refilled: Instant,
    day_started: Instant,
    today: u32,
}

/// Clients remembered before idle ones are forgotten.
const MAX_CLIENTS: usize = 100_000;
const DAY: Duration = Duration::from_secs(24 * 3600);

impl Default for LookupLimiter {
    /// Five at once, then one every two seconds, 1,500 a day (w.c.s.: 3/s, 1,500/day).
    fn default() -> Self {
        Self::new(5, Duration::from_secs(2), 1_500)
    }
}

impl LookupLimiter {
    /// A limiter allowing `burst` lookups at once, one more every `every`, `daily` a day.
    pub fn new(burst: u32, every: Duration, daily: u32) -> Self {
        Self { burst, every, daily, clients: Mutex::new(HashMap::new()) }
    }

    /// Takes one lookup for `client`; false when over the limit.
    pub fn allow(&self, client: &str, now: Instant) -> bool {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if clients.len() >= MAX_CLIENTS && !clients.contains_key(client) {
            let burst = f64::from(self.burst);
            let every = self.every;
            // Forget clients whose bucket is full again: they owe nothing.
            clients.retain(|_, b| {
                b.tokens + now.duration_since(b.refilled).as_secs_f64() / every.as_secs_f64()
                    < burst
            });
        }
        let bucket = clients.entry(client.to_owned()).or_insert(Bucket {
            tokens: f64::from(self.burst),
            refilled: now,
            day_started: now,
            today: 0,
        });
        let gained = now.duration_since(bucket.refilled).as_secs_f64() / self.every.as_secs_f64();
        bucket.tokens = (bucket.tokens + gained).min(f64::from(self.burst));
        bucket.refilled = now;
        if now.duration_since(bucket.day_started) >= DAY {
            bucket.day_started = now;
            bucket.today = 0;
        }
        if bucket.tokens < 1.0 || bucket.today >= self.daily {
            return false;
        }
        bucket.tokens -= 1.0;
        bucket.today += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_carry_128_bits_and_survive_hand_copying() {
        let code = new_code().unwrap();
        assert_eq!(code.len(), 26 + 5);
        let n = normalise(&code).unwrap();
        assert_eq!(n.len(), 26);
        assert_eq!(normalise(&code.to_lowercase().replace('-', " ")), Some(n.clone()));
        assert_ne!(new_code().unwrap(), code);
        assert_eq!(hash(&n).len(), 64);
        assert_eq!(normalise("too-short"), None);
        assert_eq!(normalise(&format!("{n}é")), None);
        let confusable = n.replace('0', "O").replace('1', "l");
        assert_eq!(normalise(&confusable), Some(n));
    }

    #[test]
    fn lookups_are_limited_per_client() {
        let limiter = LookupLimiter::new(3, Duration::from_secs(1), 5);
        let t0 = Instant::now();
        assert!((0..3).all(|_| limiter.allow("a", t0)));
        assert!(!limiter.allow("a", t0), "burst spent");
        assert!(limiter.allow("b", t0), "another client has its own");
        assert!(limiter.allow("a", t0 + Duration::from_secs(1)), "one more each second");
        assert!(limiter.allow("a", t0 + Duration::from_secs(3)));
        assert!(!limiter.allow("a", t0 + Duration::from_secs(10)), "daily cap");
        assert!(limiter.allow("a", t0 + DAY + Duration::from_secs(11)));
    }
}
