//! `paver check-config`: validate, and say what is wrong where.

use std::path::Path;
use std::process::ExitCode;

use paver::catalog::Catalog;
use paver::config::Config;
use paver::drivers::DriverKind;
use paver::util::redact_url;

/// `catalog` (`--catalog`) is checked instead of `catalog.file`.
pub fn run(path: Option<&Path>, catalog: Option<&Path>) -> ExitCode {
    let shown = path
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "(none: embedded defaults)".into());
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("config {shown}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut problems = config.problems();
    let mut notes = Vec::new();
    if let Some(file) = catalog.or(config.catalog.file.as_deref()) {
        if catalog.is_some() && !file.exists() {
            problems.push(format!("--catalog: {} does not exist", file.display()));
        }
        if file.exists() {
            match Catalog::from_yaml_file(file) {
                Ok(c) => {
                    notes.push(format!(
                        "catalog {}: {} components, {} teams, {} users, {} templates",
                        file.display(),
                        c.components().count(),
                        c.groups().count(),
                        c.users().count(),
                        c.templates().count()
                    ));
                    for w in c.warnings() {
                        notes.push(format!("catalog warning: {w}"));
                    }
                    problems.extend(config.policy.catalog_problems(&c));
                    // Shared identities make four-eyes and "who is this?"
                    // unanswerable: refuse the catalog until fixed.
                    problems.extend(
                        c.identity_conflicts()
                            .into_iter()
                            .map(|p| format!("catalog {}: {p}", file.display())),
                    );
                }
                Err(e) => problems.push(format!("catalog.file: {e}")),
            }
        }
    }
    let set = |s: bool| if s { "set" } else { "not set" };
    println!("config           {shown}");
    println!("server.listen    {}", config.server.listen);
    println!("database.url     {}", redact_url(&config.database.url));
    println!(
        "catalog          {}",
        match (
            catalog.or(config.catalog.file.as_deref()),
            &config.catalog.backstage_url,
        ) {
            (Some(f), _) => format!("file {}", f.display()),
            (None, Some(u)) => format!(
                "Backstage {u} (token {})",
                set(config.catalog.backstage_token.is_some())
            ),
            (None, None) => "none".into(),
        }
    );
    println!("nlu.mode         {:?}", config.nlu.mode);
    println!(
        "slack            api {} · bot token {} · signing secret {} · app token {}",
        config.slack.api_url,
        set(config.slack.bot_token.is_some()),
        set(config.slack.signing_secret.is_some()),
        set(config.slack.app_token.is_some())
    );
    println!(
        "discord          api {} · token {} · public key {}",
        config.discord.api_url,
        set(config.discord.token.is_some()),
        set(config.discord.public_key.is_some())
    );
    let hook = |on: bool| if on { "on" } else { "off (no secret)" };
    println!(
        "hooks            /hooks/github {} · /hooks/argocd {} · /hooks/generic {} · /hooks/checks {}",
        hook(config.hooks.github_secret.is_some()),
        hook(config.hooks.argocd_secret.is_some()),
        hook(config.hooks.generic_secret.is_some()),
        hook(config.hooks.checks_secret.is_some())
    );
    let list = |l: &[paver::notify::ChannelRef]| {
        if l.is_empty() {
            "none".to_owned()
        } else {
            l.iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    println!(
        "notify           default {} · production {} · platform {} · {} team rules · {} muted",
        list(&config.notify.default_channels),
        list(&config.notify.production_channels),
        list(&config.notify.platform_channels),
        config.notify.teams.len(),
        config.notify.mute.len()
    );
    println!(
        "llm              {}",
        match (&config.llm.base_url, &config.llm.model) {
            (Some(u), Some(m)) => format!(
                "{m} at {u} (api key {}) · mode {} · timeout {}s · {} at once · prompts {}",
                set(config.llm.api_key.is_some()),
                config.llm.mode.as_str(),
                config.llm.timeout_secs,
                config.llm.max_concurrency,
                match paver::nlu::llm::Prompts::load(config.llm.prompts_dir.as_deref()) {
                    Ok(p) => format!(
                        "{} from {}",
                        p.understand.version,
                        p.source
                            .map(|d| d.display().to_string())
                            .unwrap_or_else(|| "the binary".into())
                    ),
                    Err(e) => format!("unreadable: {e}"),
                }
            ),
            _ => "not configured".into(),
        }
    );
    println!("drivers          {}", drivers_line(&config));
    println!(
        "cost             {} · {} environments and {} resource types priced · limit per team {}",
        config.cost.currency,
        config.cost.environments.len(),
        config.cost.resources.len(),
        config
            .policy
            .max_monthly_cost_per_team
            .map(|p| format!("{}/month", config.cost.format(p.0)))
            .unwrap_or_else(|| "none".into())
    );
    notes.extend(config.cost.gaps().into_iter().map(|g| format!("note: {g}")));
    for n in &notes {
        println!("{n}");
    }
    if problems.is_empty() {
        println!("ok");
        ExitCode::SUCCESS
    } else {
        for p in &problems {
            eprintln!("problem: {p}");
        }
        ExitCode::FAILURE
    }
}

/// Which driver runs what, and how each driver in use is reached.
fn drivers_line(config: &Config) -> String {
    let set = |s: bool| if s { "set" } else { "not set" };
    let d = &config.drivers;
    let mut by_driver: std::collections::BTreeMap<DriverKind, Vec<&str>> = Default::default();
    for (kind, name) in d.routes() {
        by_driver.entry(name).or_default().push(kind.as_str());
    }
    let mut parts: Vec<String> = by_driver
        .iter()
        .map(|(name, kinds)| {
            let how = match *name {
                DriverKind::Backstage => format!(
                    " at {} (token {})",
                    config
                        .backstage
                        .base_url
                        .as_ref()
                        .or(config.catalog.backstage_url.as_ref())
                        .map(|u| u.to_string())
                        .unwrap_or_else(|| "?".into()),
                    set(config.backstage.token.is_some()
                        || config.catalog.backstage_token.is_some())
                ),
                DriverKind::Argocd => format!(
                    " at {} (token {})",
                    config
                        .argocd
                        .base_url
                        .as_ref()
                        .map(|u| u.to_string())
                        .unwrap_or_else(|| "?".into()),
                    set(config.argocd.token.is_some() || config.argocd.password.is_some())
                ),
                DriverKind::Orchestrator => format!(
                    " at {} (signing secret {})",
                    config
                        .orchestrator
                        .url
                        .as_ref()
                        .map(|u| u.to_string())
                        .unwrap_or_else(|| "?".into()),
                    set(config.orchestrator.signing_secret.is_some())
                ),
                DriverKind::Gitops => String::new(),
            };
            format!("{name}{how}: {}", kinds.join(", "))
        })
        .collect();
    let status: Vec<&str> = d.status.kinds().iter().map(|k| k.as_str()).collect();
    parts.push(format!("status: {}", status.join("+")));
    if let Some(u) = &d.environment_url {
        parts.push(format!("environment URLs: {u}"));
    }
    parts.join(" · ")
}
