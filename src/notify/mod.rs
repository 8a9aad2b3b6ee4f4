//! Deploy notifications (issue 13, in progress): Paver speaks first when a
//! deploy lands or fails. So far only the GitHub edge is here — the
//! webhook signature check and the deliveries Paver reads, typed. No route
//! serves it yet: routing to teams' channels and request threads comes
//! next, and until then `/hooks/github` does not exist rather than
//! acknowledge and drop what GitHub sends.

pub mod github;
