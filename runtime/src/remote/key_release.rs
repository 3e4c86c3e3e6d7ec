//! Key release: how a worker obtains the dataset key without it ever travelling in an engine's
//! configuration, environment, files or logs.
//!
//! The coordinator issues one token per partition (random, 32 bytes) and hands it to the engine
//! with the spec. A worker makes an ephemeral X25519 key pair and sends, over a plain TCP
//! connection to the coordinator, one request sealed with HPKE to the room's public key (pinned
//! in the spec): the spec's digest, the token, its ephemeral public key and a fresh nonce. The
//! coordinator opens it with the room's private key, checks the token against the spec and the
//! attempts left, and answers sealed to the ephemeral key: the nonce (which proves the answer
//! came from the holder of the room's key), the attempt's number, the dataset key, the
//! partition's MAC key and the run's guest randomness. Someone watching the connection learns
//! neither the token nor the key; someone replaying a request gets an answer only the worker
//! that made it can open.
//!
//! A token serves at most [`MAX_ATTEMPTS`] releases (an engine retries a task whose executor
//! died), each to a fresh ephemeral key, and only while its run collects. Frames:
//!
//! ```text
//! request:  "SRKQ" version:u8 (1) length:u32 enc:[32] ciphertext
//!           plaintext: spec:[32] token:[32] ephemeral public key:[32] nonce:[32]
//! answer:   "SRKA" version:u8 (1) status:u8 (0 released, 1 refused) length:u32 bytes
//!           released: enc:[32] ciphertext; plaintext: nonce:[32] attempt:u32 data key:[32]
//!           partition MAC key:[32] guest random:[32] guest insecure seed:[16]
//!           refused: a UTF-8 reason
//! ```

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use hpke::{Deserializable, Kem as _, OpModeR, OpModeS, Serializable};
use parking_lot::Mutex;
use ring::rand::{SecureRandom, SystemRandom};
use ring::{digest, hmac};
use zeroize::Zeroizing;

use crate::data_at_rest::format::{HpkeAead as Aead, HpkeKdf as Kdf, HpkeKem as Kem};
use crate::keys::RoomKeys;

/// Releases one token serves (Spark's default `spark.task.maxFailures`, which the Spark engine
/// sets to the same number).
pub const MAX_ATTEMPTS: u32 = 4;

const REQUEST_INFO: &[u8] = b"strongroom key release v1 request";
const ANSWER_INFO: &[u8] = b"strongroom key release v1 answer";
const PARTITION_KEY_LABEL: &[u8] = b"strongroom partition key v1";
const REQUEST_PLAIN: usize = 128;
const ANSWER_PLAIN: usize = 32 + 4 + 32 + 32 + 32 + 16;
/// Longest frame body either side reads.
const MAX_FRAME: usize = 4096;
/// How long either side waits on the other.
const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections served at once; more are closed unanswered (a worker retries).
const MAX_CONNECTIONS: usize = 64;

/// What a worker receives: everything secret its partition needs.
pub struct Released {
    /// The attempt's number (1 for the first release of the token).
    pub attempt: u32,
    /// The dataset's data key.
    pub data_key: Zeroizing<[u8; 32]>,
    /// The key the worker MACs its answer with.
    pub partition_key: Zeroizing<[u8; 32]>,
    /// The run's guest randomness key.
    pub guest_random: Zeroizing<[u8; 32]>,
    /// The run's guest insecure seed.
    pub guest_insecure_seed: u128,
}

/// Why a worker got no key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReleaseError {
    /// The coordinator could not be reached or the exchange broke off: worth retrying.
    #[error("key release: {0}")]
    Unreachable(String),
    /// The coordinator refused (or the answer is not from the room pinned): no retry helps.
    #[error("key release refused: {0}")]
    Refused(String),
}

/// The secrets of one run that the coordinator releases.
pub struct RunSecrets {
    /// The dataset key.
    pub data_key: Zeroizing<[u8; 32]>,
    /// The run's guest randomness key.
    pub guest_random: Zeroizing<[u8; 32]>,
    /// The run's guest insecure seed.
    pub guest_insecure_seed: u128,
    /// The secret the partitions' MAC keys derive from (random per run, never released).
    pub mac_secret: Zeroizing<[u8; 32]>,
}

impl RunSecrets {
    /// The MAC key of the partition whose spec digests to `spec`.
    pub fn partition_key(&self, spec: &[u8; 32]) -> Zeroizing<[u8; 32]> {
        partition_key(&self.mac_secret, spec)
    }
}

fn partition_key(secret: &[u8; 32], spec: &[u8; 32]) -> Zeroizing<[u8; 32]> {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(PARTITION_KEY_LABEL);
    ctx.update(spec);
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(ctx.sign().as_ref());
    out
}

/// 32 random bytes.
pub fn random32() -> Result<[u8; 32], String> {
    let mut out = [0u8; 32];
    SystemRandom::new()
        .fill(&mut out)
        .map_err(|_| "no system randomness".to_string())?;
    Ok(out)
}

fn token_id(token: &[u8; 32]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, token).as_ref());
    out
}

/// One partition's grant: its spec's digest and the releases made.
struct Grant {
    spec: [u8; 32],
    partition: u32,
    released: u32,
}

/// The coordinator's side: a listener that releases keys to the run's workers until dropped.
pub struct KeyServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    grants: Arc<Mutex<HashMap<[u8; 32], Grant>>>,
    accept: Option<JoinHandle<()>>,
}

struct Shared {
    sealing_secret: Zeroizing<[u8; 32]>,
    secrets: RunSecrets,
    grants: Arc<Mutex<HashMap<[u8; 32], Grant>>>,
}

impl KeyServer {
    /// Listens on `listen` (`host:port`; port 0 picks one) for the run's workers, releasing
    /// nothing until tokens are granted (see [`KeyServer::grant`]).
    pub fn start(listen: &str, room: &RoomKeys, secrets: RunSecrets) -> Result<KeyServer, String> {
        let listener =
            TcpListener::bind(listen).map_err(|e| format!("key release on {listen}: {e}"))?;
        let addr = listener
            .local_addr()
            .map_err(|e| format!("key release on {listen}: {e}"))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("key release on {listen}: {e}"))?;
        let grants = Arc::new(Mutex::new(HashMap::new()));
        let shared = Arc::new(Shared {
            sealing_secret: Zeroizing::new(*room.sealing_secret()),
            secrets,
            grants: Arc::clone(&grants),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let open = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let accept = std::thread::Builder::new()
            .name("strongroom-key-release".into())
            .spawn(move || {
                while !stopping.load(Ordering::Relaxed) {
                    match listener.accept() {
                        // Anyone who reaches the port can connect: a bounded number of
                        // connections is served, each for at most IO_TIMEOUT.
                        Ok((stream, _)) if open.load(Ordering::Relaxed) >= MAX_CONNECTIONS => {
                            drop(stream);
                        }
                        Ok((stream, _)) => {
                            let shared = Arc::clone(&shared);
                            let done = Arc::clone(&open);
                            open.fetch_add(1, Ordering::Relaxed);
                            let spawned = std::thread::Builder::new()
                                .name("strongroom-key-release-conn".into())
                                .spawn(move || {
                                    serve(stream, &shared);
                                    done.fetch_sub(1, Ordering::Relaxed);
                                });
                            if spawned.is_err() {
                                // No thread: the connection is dropped, and not counted.
                                open.fetch_sub(1, Ordering::Relaxed);
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(10));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
            })
            .map_err(|e| format!("key release: {e}"))?;
        Ok(KeyServer {
            addr,
            stop,
            grants,
            accept: Some(accept),
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Grants tokens: each pairs a token with its partition's number and its spec's digest.
    pub fn grant(&self, grants: Vec<([u8; 32], u32, [u8; 32])>) {
        let mut held = self.grants.lock();
        for (token, partition, spec) in grants {
            held.insert(
                token_id(&token),
                Grant {
                    spec,
                    partition,
                    released: 0,
                },
            );
        }
    }

    /// Releases made per partition, by partition number.
    pub fn releases(&self) -> Vec<(u32, u32)> {
        let mut out: Vec<(u32, u32)> = self
            .grants
            .lock()
            .values()
            .map(|g| (g.partition, g.released))
            .collect();
        out.sort_unstable();
        out
    }
}

impl Drop for KeyServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

fn read_frame(
    stream: &mut TcpStream,
    magic: &[u8; 4],
    status: bool,
) -> Result<(u8, Vec<u8>), String> {
    let mut head = [0u8; 10];
    let n = if status { 10 } else { 9 };
    stream
        .read_exact(&mut head[..n])
        .map_err(|e| format!("reading: {e}"))?;
    if &head[..4] != magic || head[4] != 1 {
        return Err("not a key-release frame of version 1".into());
    }
    let (code, at) = if status { (head[5], 6) } else { (0, 5) };
    let len = u32::from_le_bytes([head[at], head[at + 1], head[at + 2], head[at + 3]]) as usize;
    if len > MAX_FRAME {
        return Err(format!("a frame of {len} bytes"));
    }
    let mut body = vec![0u8; len];
    stream
        .read_exact(&mut body)
        .map_err(|e| format!("reading: {e}"))?;
    Ok((code, body))
}

fn answer(stream: &mut TcpStream, status: u8, body: &[u8]) {
    let mut out = Vec::with_capacity(10 + body.len());
    out.extend_from_slice(b"SRKA");
    out.push(1);
    out.push(status);
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(body);
    let _ = stream.write_all(&out);
}

fn serve(mut stream: TcpStream, shared: &Shared) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    match release(&mut stream, shared) {
        Ok(body) => answer(&mut stream, 0, &body),
        Err(why) => answer(&mut stream, 1, why.as_bytes()),
    }
}

fn release(stream: &mut TcpStream, shared: &Shared) -> Result<Vec<u8>, String> {
    let (_, body) = read_frame(stream, b"SRKQ", false)?;
    if body.len() < 32 {
        return Err("a request too short".into());
    }
    let sk = <Kem as hpke::Kem>::PrivateKey::from_bytes(&shared.sealing_secret[..])
        .map_err(|_| "the room's key".to_string())?;
    let enc = <Kem as hpke::Kem>::EncappedKey::from_bytes(&body[..32])
        .map_err(|_| "a request not sealed to this room".to_string())?;
    let plain = Zeroizing::new(
        hpke::single_shot_open::<Aead, Kdf, Kem>(
            &OpModeR::Base,
            &sk,
            &enc,
            REQUEST_INFO,
            &body[32..],
            b"",
        )
        .map_err(|_| "a request not sealed to this room".to_string())?,
    );
    if plain.len() != REQUEST_PLAIN {
        return Err("a request of the wrong size".into());
    }
    let take = |at: usize| -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(&plain[at..at + 32]);
        out
    };
    let (spec, token, ephemeral, nonce) = (take(0), take(32), take(64), take(96));
    let attempt = {
        let mut grants = shared.grants.lock();
        let grant = grants
            .get_mut(&token_id(&token))
            .ok_or("a token this run did not issue (or its run has ended)")?;
        if grant.spec != spec {
            return Err("the token was issued for another partition".into());
        }
        if grant.released >= MAX_ATTEMPTS {
            return Err(format!(
                "the token was used {MAX_ATTEMPTS} times already; the partition gets no more attempts"
            ));
        }
        grant.released += 1;
        grant.released
    };
    let secrets = &shared.secrets;
    let mut out = Zeroizing::new(Vec::with_capacity(ANSWER_PLAIN));
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&attempt.to_le_bytes());
    out.extend_from_slice(&secrets.data_key[..]);
    out.extend_from_slice(&secrets.partition_key(&spec)[..]);
    out.extend_from_slice(&secrets.guest_random[..]);
    out.extend_from_slice(&secrets.guest_insecure_seed.to_le_bytes());
    let pk = <Kem as hpke::Kem>::PublicKey::from_bytes(&ephemeral)
        .map_err(|_| "not an X25519 public key".to_string())?;
    let mut rng = hpke_rand::UnwrapErr(hpke_rand::OsRng);
    let (enc, sealed) = hpke::single_shot_seal::<Aead, Kdf, Kem, _>(
        &OpModeS::Base,
        &pk,
        ANSWER_INFO,
        &out,
        b"",
        &mut rng,
    )
    .map_err(|e| format!("HPKE: {e}"))?;
    let mut body = enc.to_bytes().to_vec();
    body.extend_from_slice(&sealed);
    Ok(body)
}

/// The worker's side: asks the coordinator at `addr` (holding the room's sealing key
/// `room_sealing`) for the partition's secrets.
pub fn request(
    addr: &str,
    room_sealing: &[u8; 32],
    spec: &[u8; 32],
    token: &[u8; 32],
) -> Result<Released, ReleaseError> {
    let refused = |m: &str| ReleaseError::Refused(m.to_string());
    let mut rng = hpke_rand::UnwrapErr(hpke_rand::OsRng);
    let (sk, pk) = Kem::gen_keypair(&mut rng);
    let nonce = random32().map_err(ReleaseError::Unreachable)?;
    let mut plain = Zeroizing::new(Vec::with_capacity(REQUEST_PLAIN));
    plain.extend_from_slice(spec);
    plain.extend_from_slice(token);
    plain.extend_from_slice(&pk.to_bytes());
    plain.extend_from_slice(&nonce);
    let room = <Kem as hpke::Kem>::PublicKey::from_bytes(room_sealing)
        .map_err(|_| refused("the pinned room key is not an X25519 key"))?;
    let (enc, sealed) = hpke::single_shot_seal::<Aead, Kdf, Kem, _>(
        &OpModeS::Base,
        &room,
        REQUEST_INFO,
        &plain,
        b"",
        &mut rng,
    )
    .map_err(|e| refused(&format!("HPKE: {e}")))?;
    let mut frame = b"SRKQ\x01".to_vec();
    frame.extend_from_slice(&((32 + sealed.len()) as u32).to_le_bytes());
    frame.extend_from_slice(&enc.to_bytes());
    frame.extend_from_slice(&sealed);
    let unreachable = |e: std::io::Error| ReleaseError::Unreachable(format!("{addr}: {e}"));
    let mut stream = addr
        .parse::<SocketAddr>()
        .map_err(|e| refused(&format!("coordinator address {addr}: {e}")))
        .and_then(|a| TcpStream::connect_timeout(&a, IO_TIMEOUT).map_err(unreachable))?;
    stream
        .set_read_timeout(Some(IO_TIMEOUT))
        .map_err(unreachable)?;
    stream.write_all(&frame).map_err(unreachable)?;
    let (status, body) = read_frame(&mut stream, b"SRKA", true)
        .map_err(|e| ReleaseError::Unreachable(format!("{addr}: {e}")))?;
    if status != 0 {
        return Err(ReleaseError::Refused(
            String::from_utf8_lossy(&body).into_owned(),
        ));
    }
    let not_the_room = || refused("the answer is not from the room whose key is pinned");
    if body.len() < 32 {
        return Err(not_the_room());
    }
    let enc =
        <Kem as hpke::Kem>::EncappedKey::from_bytes(&body[..32]).map_err(|_| not_the_room())?;
    let plain = Zeroizing::new(
        hpke::single_shot_open::<Aead, Kdf, Kem>(
            &OpModeR::Base,
            &sk,
            &enc,
            ANSWER_INFO,
            &body[32..],
            b"",
        )
        .map_err(|_| not_the_room())?,
    );
    if plain.len() != ANSWER_PLAIN || plain[..32] != nonce {
        return Err(not_the_room());
    }
    let key = |at: usize| {
        let mut out = Zeroizing::new([0u8; 32]);
        out.copy_from_slice(&plain[at..at + 32]);
        out
    };
    let mut seed = [0u8; 16];
    seed.copy_from_slice(&plain[132..148]);
    Ok(Released {
        attempt: u32::from_le_bytes([plain[32], plain[33], plain[34], plain[35]]),
        data_key: key(36),
        partition_key: key(68),
        guest_random: key(100),
        guest_insecure_seed: u128::from_le_bytes(seed),
    })
}
