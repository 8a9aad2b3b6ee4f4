//! The inbound event whose handling is running, so that what the handling
//! writes can be keyed by it.
//!
//! An event is stored in the inbox before it is acknowledged, and a crash
//! mid-handling leaves it to be taken again. What the first handling
//! already wrote must then be found, not written a second time: inside
//! [`within`], ids (of requests, placeholders) are derived from the event
//! and the n-th id drawn is the same in every handling of it, and every
//! message posted gets a key (`event#n`) the outbox stores once. A handling
//! that takes the same path draws the same ids and keys in the same order.
//!
//! A task-local rather than a parameter: the keys are drawn deep in the
//! flows (the sender, the request store), which should not each carry the
//! event they were reached from. Tasks spawned from a handling (jobs, the
//! dispatcher) are not in its scope and draw nothing.

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};

use sha2::{Digest, Sha256};

tokio::task_local! {
    static ORIGIN: Origin;
}

struct Origin {
    /// `platform:event id`.
    event: String,
    /// Whether an earlier handling of the event may have written anything.
    again: bool,
    ids: AtomicU32,
    posts: AtomicU32,
}

/// Runs `f` as the handling of `event` (`platform:event id`); `again`:
/// the event was taken before (a crash or a failure cut that handling off).
pub async fn within<F: Future>(event: String, again: bool, f: F) -> F::Output {
    ORIGIN
        .scope(
            Origin {
                event,
                again,
                ids: AtomicU32::new(0),
                posts: AtomicU32::new(0),
            },
            f,
        )
        .await
}

/// The next id derived from the event being handled (`None` outside one):
/// `prefix` and 16 characters of a hash of the event and the count, from
/// the same alphabet as random ids. 80 bits: two events do not meet.
pub fn next_id(prefix: &str) -> Option<String> {
    ORIGIN
        .try_with(|o| derive(&o.event, o.ids.fetch_add(1, Ordering::Relaxed) + 1, prefix))
        .ok()
}

/// When the event is handled again: the first id its earlier handling drew
/// (what it stored first, its request, is found by it). `None` on a first
/// handling, which has nothing to look for.
pub fn first_id_drawn_before(prefix: &str) -> Option<String> {
    ORIGIN
        .try_with(|o| o.again.then(|| derive(&o.event, 1, prefix)))
        .ok()
        .flatten()
}

fn derive(event: &str, n: u32, prefix: &str) -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";
    let digest = Sha256::digest(format!("{event}/id/{n}"));
    let token: String = digest
        .iter()
        .take(16)
        .map(|b| ALPHABET[(*b as usize) % ALPHABET.len()] as char)
        .collect();
    format!("{prefix}{token}")
}

/// The key of the next message posted while the event is handled (`None`
/// outside one).
pub fn next_post_key() -> Option<String> {
    ORIGIN
        .try_with(|o| {
            let n = o.posts.fetch_add(1, Ordering::Relaxed) + 1;
            format!("{}#{n}", o.event)
        })
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_same_event_draws_the_same_ids_and_keys_in_order() {
        let draw = || async {
            (
                next_id("r-"),
                next_post_key(),
                next_id("r-"),
                next_post_key(),
            )
        };
        let first = within("slack:Ev1".into(), false, draw()).await;
        let again = within("slack:Ev1".into(), true, draw()).await;
        let other = within("slack:Ev2".into(), false, draw()).await;
        assert_eq!(first, again);
        assert_ne!(first.0, other.0);
        assert_ne!(first.0, first.2, "the second id is another one");
        assert_eq!(first.1.as_deref(), Some("slack:Ev1#1"));
        assert_eq!(first.3.as_deref(), Some("slack:Ev1#2"));
        assert_eq!(
            within("slack:Ev1".into(), true, async {
                first_id_drawn_before("r-")
            })
            .await,
            first.0
        );
        assert_eq!(
            within("slack:Ev1".into(), false, async {
                first_id_drawn_before("r-")
            })
            .await,
            None
        );
        let id = first.0.unwrap();
        assert!(id.starts_with("r-") && id.len() == 18, "{id}");
    }

    #[tokio::test]
    async fn outside_a_handling_nothing_is_drawn() {
        assert_eq!(next_id("r-"), None);
        assert_eq!(next_post_key(), None);
        assert_eq!(first_id_drawn_before("r-"), None);
        // A task spawned from a handling is not part of it.
        let spawned = within("slack:Ev1".into(), false, async {
            tokio::spawn(async { next_post_key() }).await.unwrap()
        })
        .await;
        assert_eq!(spawned, None);
    }
}
