//! The short notices of the request flow: answers to a press or a reply
//! that changes nothing, each worded once here.

use std::time::Duration;

use super::{messages, ButtonOp, Message};
use crate::domain::{Action, Reason, RequestState, UserName};
use crate::util::text::clean;

/// What only the requester may do to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequesterOnly {
    Change,
    Confirm,
    Cancel,
    Retry,
}

impl RequesterOnly {
    fn verb(self) -> &'static str {
        match self {
            RequesterOnly::Change => "change",
            RequesterOnly::Confirm => "confirm",
            RequesterOnly::Cancel => "cancel",
            RequesterOnly::Retry => "retry",
        }
    }
}

/// A state as people say it ("awaiting approval").
fn state_words(state: RequestState) -> String {
    state.as_str().replace('_', " ")
}

pub fn only_requester(requester: &str, what: RequesterOnly) -> Message {
    messages::notice(format!(
        "Only {requester} can {} this request.",
        what.verb()
    ))
}

/// A press or reply that came after the request moved on.
pub fn already(state: RequestState) -> Message {
    messages::notice(format!(
        "Nothing to do: this request is already {}.",
        state_words(state)
    ))
}

/// An approve/deny press on a request that waits for no approval.
pub fn not_awaiting_approval(state: RequestState) -> Message {
    messages::notice(format!(
        "Nothing to do: this request is {}.",
        state_words(state)
    ))
}

pub fn too_late_to_change(state: RequestState) -> Message {
    messages::notice(format!(
        "Too late to change it: this request is already {}.",
        state_words(state)
    ))
}

pub fn stale_card() -> Message {
    messages::notice(
        "That card is out of date: the request changed after it was shown. Check the updated card and use its buttons.",
    )
}

pub fn unknown_button() -> Message {
    messages::notice("That button is not one of mine.")
}

pub fn no_such_request(id: &str) -> Message {
    messages::notice(format!("I have no request {id}."))
}

pub fn button_mismatch() -> Message {
    messages::notice("That button does not match the request; use the buttons on its card.")
}

pub fn cancelled() -> Message {
    messages::notice("Cancelled: nothing was changed.")
}

pub fn unchanged_amendment() -> Message {
    messages::notice("That is what the request already says: confirm it on the card to go ahead.")
}

pub fn unclear_amendment() -> Message {
    messages::notice(
        "I could not tell what to change. Say, for example, \"make it production instead\", \"also add redis\", \"use 1.5.0\", \"5 replicas\" or \"cancel\"; or use the buttons on the card.",
    )
}

pub fn amended(action: &Action) -> Message {
    messages::notice(format!(
        "Updated: {}. Check the card and confirm again.",
        messages::describe(action)
    ))
}

pub fn nothing_first() -> Message {
    messages::notice("Nothing needs to happen first.")
}

pub fn approval_window_passed() -> Message {
    messages::notice("Too late: the approval window of this request has passed. Ask again.")
}

pub fn changed_since_confirmed() -> Message {
    messages::notice(
        "This request's action changed since it was confirmed; it must be proposed and approved again.",
    )
}

/// In the thread, when an approver denied the request: who, and why in
/// their own words (markup neutralised, so a reason cannot ping anyone).
pub fn denied_by(approver: &UserName, reason: &Reason) -> Message {
    messages::notice(format!(
        "{approver} denied this request: {}",
        clean(reason.as_str())
    ))
}

/// A press that needs a reason came without one (an old client, or the
/// console's `/press Deny` with nothing after it).
pub fn reason_needed(op: ButtonOp) -> Message {
    let what = op.reason_ask().map_or(op.as_str(), |a| a.submit);
    messages::notice(format!(
        "{what} needs a reason: press it again and say why."
    ))
}

pub fn approval_expired() -> Message {
    messages::notice(
        "Nobody approved this in time, so it expired. Ask again if it is still needed.",
    )
}

/// The denial of an action whose stored form no longer matches what was
/// confirmed.
pub fn integrity_denied() -> Message {
    messages::denied("the stored action does not match what was confirmed; ask again")
}

/// The card's progress line while a transient failure waits for its retry.
pub fn retrying(attempt: u32, max: u32, error: &str, delay: Duration) -> String {
    format!(
        "attempt {attempt} of {max} failed ({error}); retrying in {}",
        human(delay)
    )
}

/// A delay as people say it: "800 ms", "12 s", "3 min".
pub fn human(d: Duration) -> String {
    let s = d.as_secs_f64().round() as u64;
    match s {
        0 => format!("{} ms", d.as_millis()),
        1..=59 => format!("{s} s"),
        _ if s % 60 == 0 => format!("{} min", s / 60),
        _ => format!("{} min {} s", s / 60, s % 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_read_as_people_say_them() {
        assert_eq!(human(Duration::from_millis(400)), "400 ms");
        assert_eq!(human(Duration::from_secs(2)), "2 s");
        assert_eq!(human(Duration::from_secs(120)), "2 min");
        assert_eq!(human(Duration::from_secs(65)), "1 min 5 s");
    }
}
