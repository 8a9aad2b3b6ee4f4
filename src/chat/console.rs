//! The console adapter: a terminal chat. Cards print with numbered buttons;
//! `/press` presses one on the latest card that has it. A button that needs
//! a reason takes it after the label (`/press Deny not during the freeze`),
//! or asks for it on the next line.

use std::io::Write;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use std::collections::HashMap;

use super::{ButtonStyle, ChatSink, Message, SendError, Tone};
use crate::catalog::Catalog;

/// What the console has shown: every card by reference, latest last.
#[derive(Default)]
struct Shown {
    next: u64,
    cards: Vec<(String, Message)>,
}

/// Prints messages to a writer (stdout in `paver chat`).
#[derive(Clone)]
pub struct ConsoleSink {
    shown: Arc<Mutex<Shown>>,
    out: Arc<Mutex<Box<dyn Write + Send>>>,
    /// Chat ids to names, for channel and user references in messages.
    names: Arc<Mutex<HashMap<String, String>>>,
}

impl ConsoleSink {
    pub fn new(out: Box<dyn Write + Send>) -> Self {
        ConsoleSink {
            shown: Arc::new(Mutex::new(Shown::default())),
            out: Arc::new(Mutex::new(out)),
            names: Arc::default(),
        }
    }

    /// Learns the catalog's channel and user ids, so `<#C0PLATFORM>` in a
    /// message prints as `#team-platform` and `<@U0ADA>` as `@ada`.
    pub fn learn_names(&self, catalog: &Catalog) {
        let mut names = self.names.lock().unwrap_or_else(|p| p.into_inner());
        for g in catalog.groups() {
            for id in [&g.slack_channel, &g.discord_channel].into_iter().flatten() {
                names.insert(format!("#{id}"), format!("#{}", g.name));
            }
        }
        for u in catalog.users() {
            for id in [&u.slack_user_id, &u.discord_user_id].into_iter().flatten() {
                names.insert(format!("@{id}"), format!("@{}", u.name));
            }
        }
    }

    /// Slack and Discord references (`<#id>`, `<@id>`, `<#id|name>`) as a
    /// person reads them in a terminal.
    fn references(&self, text: &str) -> String {
        let names = self.names.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find('<') {
            out.push_str(&rest[..start]);
            let after = &rest[start + 1..];
            let Some(end) = after.find('>') else {
                out.push_str(&rest[start..]);
                return out;
            };
            let inner = &after[..end];
            let (target, label) = inner.split_once('|').unwrap_or((inner, ""));
            let sigil = target.chars().next();
            if matches!(sigil, Some('#') | Some('@')) && target.len() > 1 {
                let shown = names.get(target).cloned().unwrap_or_else(|| {
                    if label.is_empty() {
                        target.to_owned()
                    } else {
                        format!("{}{label}", &target[..1])
                    }
                });
                out.push_str(&shown);
            } else {
                out.push('<');
                out.push_str(inner);
                out.push('>');
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        out
    }

    fn print(&self, text: &str) {
        let text = self.references(text);
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
    }

    /// The payload of the button `which` (a label, or a number counting
    /// from 1) on the latest card that has such a button.
    pub fn find_button(&self, which: &str) -> Option<String> {
        let shown = self.shown.lock().unwrap_or_else(|p| p.into_inner());
        let which = which.trim();
        let index: Option<usize> = which.parse().ok();
        shown.cards.iter().rev().find_map(|(_, m)| match index {
            Some(n) if n >= 1 => m.buttons.get(n - 1).map(|b| b.payload.clone()),
            Some(_) => None,
            None => m
                .buttons
                .iter()
                .find(|b| b.label.eq_ignore_ascii_case(which))
                .map(|b| b.payload.clone()),
        })
    }

    /// What `/press` names: the button (a label, or its number, as for
    /// [`Self::find_button`]) and the words after it, a reason for a button
    /// that needs one (`/press Deny not during the freeze`). The longest
    /// run of leading words that names a button wins, so labels of several
    /// words still work.
    pub fn find_press(&self, arg: &str) -> Option<(String, String)> {
        let words: Vec<&str> = arg.split_whitespace().collect();
        (1..=words.len()).rev().find_map(|n| {
            let payload = self.find_button(&words[..n].join(" "))?;
            Some((payload, words[n..].join(" ")))
        })
    }

    fn remember(&self, message: &Message) -> String {
        let mut shown = self.shown.lock().unwrap_or_else(|p| p.into_inner());
        shown.next += 1;
        // Unique across restarts: the cards table outlives this process.
        let r = format!(
            "console-{}-{}",
            chrono::Utc::now().timestamp_millis(),
            shown.next
        );
        shown.cards.push((r.clone(), message.clone()));
        r
    }
}

/// Renders a message as indented plain text.
pub fn render(message: &Message, thread: bool) -> String {
    let lead = if thread { "  ↳ " } else { "" };
    let pad = if thread { "    " } else { "" };
    let mut s = String::new();
    let mark = match message.tone {
        Tone::Info => "",
        Tone::Success => "✓ ",
        Tone::Warning => "! ",
        Tone::Danger => "✗ ",
    };
    let mut first = true;
    let mut line = |s: &mut String, text: &str| {
        s.push_str(if first { lead } else { pad });
        s.push_str(text);
        s.push('\n');
        first = false;
    };
    if let Some(t) = &message.title {
        line(&mut s, &format!("┌ {mark}{t}"));
        for (k, v) in &message.fields {
            line(&mut s, &format!("│ {k}: {v}"));
        }
        if !message.text.is_empty() {
            for l in message.text.lines() {
                line(&mut s, &format!("│ {l}"));
            }
        }
        if let Some(c) = &message.context {
            line(&mut s, &format!("│ ({c})"));
        }
        let buttons: Vec<String> = message
            .buttons
            .iter()
            .enumerate()
            .map(|(i, b)| match b.style {
                ButtonStyle::Danger => format!("[{} {}!]", i + 1, b.label),
                _ => format!("[{} {}]", i + 1, b.label),
            })
            .collect();
        if buttons.is_empty() {
            line(&mut s, "└");
        } else {
            line(
                &mut s,
                &format!("└ {}   (/press LABEL or /press N)", buttons.join(" ")),
            );
        }
    } else {
        for (i, l) in message.text.lines().enumerate() {
            line(
                &mut s,
                &if i == 0 {
                    format!("{mark}{l}")
                } else {
                    l.to_owned()
                },
            );
        }
        for (k, v) in &message.fields {
            line(&mut s, &format!("  {k}: {v}"));
        }
    }
    s
}

#[async_trait]
impl ChatSink for ConsoleSink {
    async fn post(
        &self,
        _channel: &str,
        thread: Option<&str>,
        message: &Message,
    ) -> Result<String, SendError> {
        let r = self.remember(message);
        self.print(&format!(
            "paver> {}",
            render(message, thread.is_some()).trim_start()
        ));
        Ok(r)
    }

    async fn update(
        &self,
        _channel: &str,
        message_ref: &str,
        message: &Message,
    ) -> Result<(), SendError> {
        let previous = {
            let mut shown = self.shown.lock().unwrap_or_else(|p| p.into_inner());
            match shown.cards.iter_mut().find(|(r, _)| r == message_ref) {
                Some((_, m)) => std::mem::replace(m, message.clone()),
                None => return Err(SendError::Permanent(format!("no message {message_ref}"))),
            }
        };
        // A terminal scrolls: when only the status moved, say just that.
        let same_shape = previous.buttons == message.buttons && previous.tone == message.tone;
        match message.fields.iter().find(|(k, _)| k == "Status") {
            Some((_, status)) if same_shape => self.print(&format!(
                "paver (updated)> {}: {status}\n",
                message.title.as_deref().unwrap_or("card")
            )),
            _ => self.print(&format!(
                "paver (updated)> {}",
                render(message, false).trim_start()
            )),
        }
        Ok(())
    }

    async fn ephemeral(
        &self,
        _channel: &str,
        user: &str,
        _thread: Option<&str>,
        message: &Message,
    ) -> Result<(), SendError> {
        self.print(&format!(
            "paver (only {user} sees this)> {}",
            render(message, false).trim_start()
        ));
        Ok(())
    }
}

/// The operating-system account running this process: who really sits at
/// the console, whoever they speak as. The account database first (the
/// environment is whatever the caller set), then `USER`/`LOGNAME`/`USERNAME`.
pub fn os_user() -> String {
    #[cfg(unix)]
    if let Some(name) = unix::account_name() {
        return name;
    }
    for var in ["USER", "LOGNAME", "USERNAME"] {
        if let Ok(v) = std::env::var(var) {
            if !v.trim().is_empty() {
                return v.trim().to_owned();
            }
        }
    }
    #[cfg(unix)]
    return format!("uid-{}", unix::uid());
    #[cfg(not(unix))]
    return "unknown".into();
}

#[cfg(unix)]
mod unix {
    pub fn uid() -> u32 {
        // SAFETY: getuid has no preconditions and cannot fail.
        unsafe { libc::getuid() }
    }

    /// The login name of the real user id, from the account database (NSS).
    pub fn account_name() -> Option<String> {
        let mut buf: Vec<libc::c_char> = vec![0; 16 * 1024];
        // SAFETY: a zeroed passwd is a valid out-parameter (pointers null).
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call and buf's length is
        // passed; on success pw_name points into buf, alive below.
        let rc =
            unsafe { libc::getpwuid_r(uid(), &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result) };
        if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
            return None;
        }
        // SAFETY: pw_name is a NUL-terminated string inside buf.
        let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) }
            .to_string_lossy()
            .into_owned();
        (!name.is_empty()).then_some(name)
    }
}
