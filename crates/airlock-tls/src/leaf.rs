//! Per-host leaf certificates, minted on demand and kept in a bounded LRU.

use std::fmt;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use lru::LruCache;
use rustls::sign::CertifiedKey;
use time::OffsetDateTime;

use crate::TlsError;
use crate::ca::{CertificateAuthority, LEAF_VALIDITY};
use crate::host::Host;

struct Leaf {
    key: Arc<CertifiedKey>,
    minted: OffsetDateTime,
}

/// Host → leaf certificate, bounded, least recently used evicted first.
pub struct LeafCache {
    ca: Arc<CertificateAuthority>,
    leaves: Mutex<LruCache<String, Leaf>>,
}

impl fmt::Debug for LeafCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeafCache")
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl LeafCache {
    /// A cache of at most `capacity` leaves (at least one).
    pub fn new(ca: Arc<CertificateAuthority>, capacity: usize) -> LeafCache {
        let capacity = NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN);
        LeafCache {
            ca,
            leaves: Mutex::new(LruCache::new(capacity)),
        }
    }

    /// The leaf for `host`, minted when absent or past half its validity.
    pub fn get(&self, host: &str) -> Result<Arc<CertifiedKey>, TlsError> {
        self.get_at(host, OffsetDateTime::now_utc())
    }

    /// Leaves currently cached.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// [`get`](Self::get) with the clock as an argument.
    pub(crate) fn get_at(&self, host: &str, now: OffsetDateTime) -> Result<Arc<CertifiedKey>, TlsError> {
        let host = Host::parse(host)?;
        let name = host.to_string();
        if let Some(leaf) = self.lock().get(&name) {
            // Re-mint well before expiry, and whenever the clock went backwards past the mint.
            let age = now - leaf.minted;
            if age >= time::Duration::ZERO && age < LEAF_VALIDITY / 2 {
                return Ok(Arc::clone(&leaf.key));
            }
        }
        // Key generation and signing take a while: never under the lock. Two racing mints for
        // one host are harmless; the later one stays cached.
        let key = Arc::new(self.ca.mint(&host, now)?);
        self.lock().put(
            name,
            Leaf {
                key: Arc::clone(&key),
                minted: now,
            },
        );
        Ok(key)
    }

    /// A panic elsewhere cannot leave the LRU half-updated in a way that matters here.
    fn lock(&self) -> MutexGuard<'_, LruCache<String, Leaf>> {
        self.leaves.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(capacity: usize) -> LeafCache {
        let (ca, _) = CertificateAuthority::generate("test CA").expect("ca");
        LeafCache::new(Arc::new(ca), capacity)
    }

    #[test]
    fn hosts_accepted_and_normalized() {
        let ok = |h: &str| Host::parse(h).map(|h| h.to_string()).expect(h);
        assert_eq!(ok("Example.COM."), "example.com");
        assert_eq!(ok("a-b_c.example"), "a-b_c.example");
        assert_eq!(ok("localhost"), "localhost");
        assert_eq!(ok("10.0.0.1"), "10.0.0.1");
        assert_eq!(ok("::1"), "::1");
        assert_eq!(ok("[2001:db8::1]"), "2001:db8::1");
        assert_eq!(
            ok(&format!("{}.com", "a".repeat(63))),
            format!("{}.com", "a".repeat(63))
        );
        let long = vec!["a".repeat(49); 5].join(".");
        assert_eq!(long.len(), 249);
        assert_eq!(ok(&long), long);
    }

    #[test]
    fn bad_hosts_rejected() {
        let long = vec!["a".repeat(50); 5].join(".");
        assert_eq!(long.len(), 254);
        for h in [
            "",
            ".",
            "*.example.com",
            "*",
            "a..b",
            ".example.com",
            "exa mple.com",
            "example.com:443",
            "ex/ample.com",
            "ex\u{0}ample.com",
            "exämple.com",
            "[example.com]",
            "[10.0.0.1]",
            "1.2.3.999",
            &format!("{}.com", "a".repeat(64)),
            &long,
        ] {
            assert!(matches!(Host::parse(h), Err(TlsError::BadHost(_))), "{h:?} accepted");
        }
        let c = cache(4);
        assert!(matches!(c.get("*.example.com"), Err(TlsError::BadHost(_))));
        assert!(c.is_empty());
    }

    #[test]
    fn cached_until_half_validity_then_reminted() {
        let c = cache(4);
        let t0 = OffsetDateTime::now_utc();
        let a = c.get_at("example.com", t0).expect("leaf");
        let again = c.get_at("EXAMPLE.com.", t0 + time::Duration::days(14)).expect("leaf");
        assert!(Arc::ptr_eq(&a, &again), "same host, fresh leaf: reused");
        let later = c.get_at("example.com", t0 + time::Duration::days(15)).expect("leaf");
        assert!(!Arc::ptr_eq(&a, &later), "past half its validity: re-minted");
        let back = c.get_at("example.com", t0).expect("leaf");
        assert!(!Arc::ptr_eq(&later, &back), "clock went backwards: re-minted");
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn lru_evicts_past_capacity() {
        let c = cache(2);
        let a = c.get("a.example").expect("leaf");
        c.get("b.example").expect("leaf");
        // Touch a, so b is the least recently used.
        assert!(Arc::ptr_eq(&a, &c.get("a.example").expect("leaf")));
        c.get("c.example").expect("leaf");
        assert_eq!(c.len(), 2);
        assert!(Arc::ptr_eq(&a, &c.get("a.example").expect("leaf")), "a survived");
        assert_eq!(c.len(), 2);
        assert_eq!(
            cache(0).get("x.example").map(|_| ()).ok(),
            Some(()),
            "capacity 0 acts as 1"
        );
    }
}
