//! What `/readyz` reports beside the database: the long-lived connections
//! a replica needs to do its work (Slack Socket Mode, Discord's gateway),
//! each registered when it is started and marked up or down as it
//! connects and drops. A component nobody started is not listed.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Cheap to clone; clones share the components.
#[derive(Debug, Clone, Default)]
pub struct Readiness {
    components: Arc<Mutex<BTreeMap<&'static str, bool>>>,
}

/// One component's switch.
#[derive(Debug, Clone)]
pub struct Component {
    name: &'static str,
    of: Readiness,
}

impl Readiness {
    /// Registers `name` as needed and not yet up.
    pub fn component(&self, name: &'static str) -> Component {
        self.set(name, false);
        Component {
            name,
            of: self.clone(),
        }
    }

    fn set(&self, name: &'static str, up: bool) {
        self.components
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name, up);
    }

    /// Every registered component and whether it is up, by name.
    pub fn snapshot(&self) -> Vec<(&'static str, bool)> {
        self.components
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(n, up)| (*n, *up))
            .collect()
    }
}

impl Component {
    pub fn up(&self) {
        self.of.set(self.name, true);
    }

    pub fn down(&self) {
        self.of.set(self.name, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_are_down_until_up_and_again_when_dropped() {
        let r = Readiness::default();
        assert!(r.snapshot().is_empty());
        let slack = r.component("slack_socket");
        assert_eq!(r.snapshot(), [("slack_socket", false)]);
        slack.up();
        let discord = r.clone().component("discord_gateway");
        assert_eq!(
            r.snapshot(),
            [("discord_gateway", false), ("slack_socket", true)]
        );
        discord.up();
        slack.down();
        assert_eq!(
            r.snapshot(),
            [("discord_gateway", true), ("slack_socket", false)]
        );
    }
}
