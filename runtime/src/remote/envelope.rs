//! A worker's answer: the partial it computed, or why it refused the partition, bound to the
//! spec it was given by HMAC-SHA256 under the partition's key (released to that worker alone by
//! the coordinator, which derives it again to check). Every number is little-endian:
//!
//! ```text
//! "SRWE" version:u8 (1) status:u8 (0 partial, 1 refused)
//! spec:[32] (SHA-256 of the spec) attempt:u32
//! payload: length:u32, then the bytes (the partial's canonical bytes, or a UTF-8 reason)
//! mac: flag:u8 (1 if present), then [32]: HMAC-SHA256 of everything before the flag
//! ```
//!
//! A refusal made before the worker had its key (a version mismatch, a token the coordinator
//! refused) carries no MAC: the coordinator reads it as a claim, never as a partial.

use ring::hmac;

const MAGIC: &[u8; 4] = b"SRWE";
const VERSION: u8 = 1;
/// Largest payload an envelope carries, bytes.
pub const MAX_PAYLOAD: usize = 256 << 20;

/// What a worker says about its partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// The payload is the partition's partial.
    Partial,
    /// The worker refused the partition for a reason no retry changes; the payload says why.
    Refused,
}

/// A decoded envelope (its MAC not yet checked: see [`Envelope::authentic`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// Partial or refusal.
    pub status: Status,
    /// SHA-256 of the spec answered.
    pub spec: [u8; 32],
    /// The attempt the coordinator numbered when it released the key (0 if none was released).
    pub attempt: u32,
    /// The partial's bytes, or the reason.
    pub payload: Vec<u8>,
    /// The MAC, if the worker had its key.
    pub mac: Option<[u8; 32]>,
}

/// Why bytes are not an envelope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a worker's answer: {0}")]
pub struct EnvelopeError(String);

impl Envelope {
    /// The bytes the MAC covers.
    fn body(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + 2 + 32 + 8 + self.payload.len());
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.push(match self.status {
            Status::Partial => 0,
            Status::Refused => 1,
        });
        out.extend_from_slice(&self.spec);
        out.extend_from_slice(&self.attempt.to_le_bytes());
        out.extend_from_slice(&(self.payload.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.payload);
        out
    }

    /// An envelope MACed under `key` (the partition's key), or unMACed without one.
    pub fn new(
        status: Status,
        spec: [u8; 32],
        attempt: u32,
        payload: Vec<u8>,
        key: Option<&[u8; 32]>,
    ) -> Envelope {
        let mut envelope = Envelope {
            status,
            spec,
            attempt,
            payload,
            mac: None,
        };
        if let Some(key) = key {
            let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), &envelope.body());
            let mut mac = [0u8; 32];
            mac.copy_from_slice(tag.as_ref());
            envelope.mac = Some(mac);
        }
        envelope
    }

    /// Its bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.body();
        match &self.mac {
            Some(mac) => {
                out.push(1);
                out.extend_from_slice(mac);
            }
            None => out.push(0),
        }
        out
    }

    /// Decodes an envelope, checking every length against the bytes present and the limit.
    pub fn decode(bytes: &[u8]) -> Result<Envelope, EnvelopeError> {
        let bad = |m: &str| EnvelopeError(m.to_string());
        if bytes.len() < 4 + 2 + 32 + 4 + 4 + 1 || &bytes[..4] != MAGIC {
            return Err(bad("no envelope header"));
        }
        if bytes[4] != VERSION {
            return Err(EnvelopeError(format!("envelope version {}", bytes[4])));
        }
        let status = match bytes[5] {
            0 => Status::Partial,
            1 => Status::Refused,
            _ => return Err(bad("unknown status")),
        };
        let mut spec = [0u8; 32];
        spec.copy_from_slice(&bytes[6..38]);
        let attempt = u32::from_le_bytes([bytes[38], bytes[39], bytes[40], bytes[41]]);
        let len = u32::from_le_bytes([bytes[42], bytes[43], bytes[44], bytes[45]]) as usize;
        let rest = &bytes[46..];
        if len > MAX_PAYLOAD || len >= rest.len() {
            return Err(bad("payload length out of range"));
        }
        let payload = rest[..len].to_vec();
        let mac = match (&rest[len..], rest[len]) {
            ([0], _) => None,
            (tail, 1) if tail.len() == 33 => {
                let mut mac = [0u8; 32];
                mac.copy_from_slice(&tail[1..]);
                Some(mac)
            }
            _ => return Err(bad("bad MAC field or trailing bytes")),
        };
        Ok(Envelope {
            status,
            spec,
            attempt,
            payload,
            mac,
        })
    }

    /// Whether its MAC verifies under `key` (in constant time).
    pub fn authentic(&self, key: &[u8; 32]) -> bool {
        let Some(mac) = &self.mac else {
            return false;
        };
        hmac::verify(&hmac::Key::new(hmac::HMAC_SHA256, key), &self.body(), mac).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_any_changed_byte_fails_the_mac() {
        let key = [9u8; 32];
        let e = Envelope::new(Status::Partial, [1; 32], 2, b"partial".to_vec(), Some(&key));
        let bytes = e.encode();
        assert_eq!(Envelope::decode(&bytes), Ok(e.clone()));
        assert!(e.authentic(&key));
        assert!(!e.authentic(&[8u8; 32]));
        for i in 0..bytes.len() {
            let mut changed = bytes.clone();
            changed[i] ^= 1;
            if let Ok(d) = Envelope::decode(&changed) {
                assert!(!d.authentic(&key), "byte {i}");
            }
        }
        let unmaced = Envelope::new(Status::Refused, [1; 32], 0, b"why".to_vec(), None);
        assert_eq!(Envelope::decode(&unmaced.encode()), Ok(unmaced.clone()));
        assert!(!unmaced.authentic(&key));
    }

    #[test]
    fn truncated_or_padded_bytes_are_refused() {
        let bytes =
            Envelope::new(Status::Partial, [1; 32], 1, vec![7; 10], Some(&[3; 32])).encode();
        for n in 0..bytes.len() {
            assert!(Envelope::decode(&bytes[..n]).is_err(), "{n}");
        }
        let mut padded = bytes.clone();
        padded.push(0);
        assert!(Envelope::decode(&padded).is_err());
    }
}
