//! Caps on long-lived WebSocket work, counted per server process: open sockets (all of them, and
//! per API key), active subscriptions (per socket, and per key), and how long a socket may stay
//! un-initialised. Every admitted socket or subscription holds an RAII slot that gives its count
//! back when dropped, so counts are released however the work ends: the client completes it,
//! the stream ends, the socket closes cleanly or the peer vanishes.
//!
//! The counts live in this process's memory on purpose: N processes behind a balancer admit N×
//! the per-key caps. A count shared by every process would need leases that expire when a
//! process dies without releasing them (a crash must not hold a key's slots forever), renewed
//! for as long as a socket lives; the per-process caps bound what one process must hold, which
//! is what protects it. See docs/subscriptions.md.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

pub use crate::config::SocketLimits;

/// Which cap refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Connections,
    KeyConnections,
    ConnectionSubscriptions,
    KeySubscriptions,
}

impl Refusal {
    pub fn message(self, limits: &SocketLimits) -> String {
        match self {
            Refusal::Connections => format!(
                "this server holds its maximum of {} WebSocket connections; retry later",
                limits.max_connections
            ),
            Refusal::KeyConnections => format!(
                "this API key holds its maximum of {} WebSocket connections on this server",
                limits.max_connections_per_key
            ),
            Refusal::ConnectionSubscriptions => format!(
                "this connection holds its maximum of {} active subscriptions",
                limits.max_subscriptions_per_connection
            ),
            Refusal::KeySubscriptions => format!(
                "this API key holds its maximum of {} active subscriptions on this server",
                limits.max_subscriptions_per_key
            ),
        }
    }
}

/// Whether `count` more is still under `cap` (0: no cap).
fn under(count: usize, cap: usize) -> bool {
    cap == 0 || count < cap
}

#[derive(Default)]
struct PerKey {
    connections: usize,
    subscriptions: usize,
}

#[derive(Default)]
struct Counts {
    connections: usize,
    keys: HashMap<Arc<str>, PerKey>,
}

impl Counts {
    /// Drops a key's entry once nothing of it is open, so the map holds only live keys.
    fn tidy(&mut self, key: &str) {
        if self
            .keys
            .get(key)
            .is_some_and(|k| k.connections == 0 && k.subscriptions == 0)
        {
            self.keys.remove(key);
        }
    }
}

/// This process's counts (part of `app::Served`). Keys are API-key digests
/// (`RequestAuth::bucket`), known before the key is looked up.
#[derive(Default)]
pub struct Admission {
    counts: Mutex<Counts>,
}

impl Admission {
    fn counts(&self) -> MutexGuard<'_, Counts> {
        // The counts stay consistent under a panic elsewhere: every update is one statement.
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A slot for one more socket in this process.
    pub fn open_connection(
        self: &Arc<Self>,
        limits: &SocketLimits,
    ) -> Result<ConnectionSlot, Refusal> {
        let mut counts = self.counts();
        if !under(counts.connections, limits.max_connections) {
            return Err(Refusal::Connections);
        }
        counts.connections += 1;
        Ok(ConnectionSlot {
            admission: self.clone(),
        })
    }

    /// A slot for one more socket of the key with digest `key`.
    pub fn admit_key(
        self: &Arc<Self>,
        key: &str,
        limits: &SocketLimits,
    ) -> Result<KeySlot, Refusal> {
        let mut counts = self.counts();
        let key: Arc<str> = match counts.keys.get_key_value(key) {
            Some((shared, _)) => shared.clone(),
            None => key.into(),
        };
        let entry = counts.keys.entry(key.clone()).or_default();
        if !under(entry.connections, limits.max_connections_per_key) {
            return Err(Refusal::KeyConnections);
        }
        entry.connections += 1;
        Ok(KeySlot {
            admission: self.clone(),
            key,
        })
    }

    /// A slot for one more subscription of `key` on a connection that has `active` already.
    pub fn start_subscription(
        self: &Arc<Self>,
        key: &KeySlot,
        active: usize,
        limits: &SocketLimits,
    ) -> Result<SubscriptionSlot, Refusal> {
        if !under(active, limits.max_subscriptions_per_connection) {
            return Err(Refusal::ConnectionSubscriptions);
        }
        let mut counts = self.counts();
        let entry = counts.keys.entry(key.key.clone()).or_default();
        if !under(entry.subscriptions, limits.max_subscriptions_per_key) {
            return Err(Refusal::KeySubscriptions);
        }
        entry.subscriptions += 1;
        Ok(SubscriptionSlot {
            admission: self.clone(),
            key: key.key.clone(),
        })
    }

    /// Sockets open in this process now.
    pub fn connections(&self) -> usize {
        self.counts().connections
    }

    /// `(connections, subscriptions)` open in this process now.
    pub fn totals(&self) -> (usize, usize) {
        let counts = self.counts();
        let subscriptions = counts.keys.values().map(|k| k.subscriptions).sum();
        (counts.connections, subscriptions)
    }

    /// `(connections, subscriptions)` of the key with digest `key` in this process now.
    pub fn usage(&self, key: &str) -> (usize, usize) {
        self.counts()
            .keys
            .get(key)
            .map_or((0, 0), |k| (k.connections, k.subscriptions))
    }
}

/// One socket of the process's count; released on drop.
pub struct ConnectionSlot {
    admission: Arc<Admission>,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut counts = self.admission.counts();
        counts.connections = counts.connections.saturating_sub(1);
    }
}

/// One socket of a key's count; released on drop.
pub struct KeySlot {
    admission: Arc<Admission>,
    key: Arc<str>,
}

impl KeySlot {
    /// The key's digest.
    pub fn key(&self) -> &str {
        &self.key
    }
}

impl Drop for KeySlot {
    fn drop(&mut self) {
        let mut counts = self.admission.counts();
        if let Some(entry) = counts.keys.get_mut(&*self.key) {
            entry.connections = entry.connections.saturating_sub(1);
        }
        counts.tidy(&self.key);
    }
}

/// One active subscription of a key's count; released on drop.
pub struct SubscriptionSlot {
    admission: Arc<Admission>,
    key: Arc<str>,
}

impl Drop for SubscriptionSlot {
    fn drop(&mut self) {
        let mut counts = self.admission.counts();
        if let Some(entry) = counts.keys.get_mut(&*self.key) {
            entry.subscriptions = entry.subscriptions.saturating_sub(1);
        }
        counts.tidy(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> SocketLimits {
        SocketLimits {
            max_connections: 3,
            max_connections_per_key: 2,
            max_subscriptions_per_connection: 2,
            max_subscriptions_per_key: 3,
            ..SocketLimits::default()
        }
    }

    #[test]
    fn caps_refuse_and_slots_release() {
        let admission = Arc::new(Admission::default());
        let limits = limits();
        let sockets: Vec<_> = (0..3)
            .map(|_| admission.open_connection(&limits).unwrap())
            .collect();
        assert_eq!(
            admission.open_connection(&limits).err(),
            Some(Refusal::Connections)
        );
        drop(sockets);
        assert_eq!(admission.connections(), 0);

        let a = admission.admit_key("k", &limits).unwrap();
        let b = admission.admit_key("k", &limits).unwrap();
        assert_eq!(
            admission.admit_key("k", &limits).err(),
            Some(Refusal::KeyConnections)
        );
        let s1 = admission.start_subscription(&a, 0, &limits).unwrap();
        let s2 = admission.start_subscription(&a, 1, &limits).unwrap();
        assert_eq!(
            admission.start_subscription(&a, 2, &limits).err(),
            Some(Refusal::ConnectionSubscriptions)
        );
        let s3 = admission.start_subscription(&b, 0, &limits).unwrap();
        assert_eq!(
            admission.start_subscription(&b, 1, &limits).err(),
            Some(Refusal::KeySubscriptions)
        );
        assert_eq!(admission.usage("k"), (2, 3));
        drop(s1);
        let s4 = admission.start_subscription(&b, 1, &limits).unwrap();
        drop((a, b, s2, s3, s4));
        assert_eq!(admission.usage("k"), (0, 0));
        assert!(admission.counts().keys.is_empty());
    }

    #[test]
    fn zero_means_no_cap() {
        let admission = Arc::new(Admission::default());
        let limits = SocketLimits {
            max_connections: 0,
            max_connections_per_key: 0,
            max_subscriptions_per_connection: 0,
            max_subscriptions_per_key: 0,
            ..SocketLimits::default()
        };
        let key = admission.admit_key("k", &limits).unwrap();
        let slots: Vec<_> = (0..500)
            .map(|n| admission.start_subscription(&key, n, &limits).unwrap())
            .collect();
        assert_eq!(admission.usage("k"), (1, 500));
        drop(slots);
    }
}
