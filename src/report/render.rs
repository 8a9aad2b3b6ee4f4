//! The report as people paste it into a doc (Markdown) and as a
//! spreadsheet reads it (CSV, one row per figure and per week). JSON is
//! the report's serde form.

use std::fmt::Write;

use super::figures::{Percentiles, Rate};
use super::{Dora, Report};

fn team_name(t: &Option<String>) -> &str {
    t.as_deref().unwrap_or("(no owner)")
}

/// The report in Markdown.
pub fn markdown(r: &Report) -> String {
    let mut o = String::new();
    let scope = r
        .team
        .as_deref()
        .map(|t| format!(" — {t}"))
        .unwrap_or_default();
    let _ = writeln!(o, "# Platform report{scope}\n");
    let _ = writeln!(o, "{} to {} (UTC)\n", r.since, r.until);

    let s = &r.self_service;
    let _ = writeln!(o, "## Self-service\n");
    let _ = writeln!(o, "| figure | value |\n| --- | --- |");
    let _ = writeln!(o, "| requests | {} |", s.requests);
    let _ = writeln!(o, "| request to URL | {} |", s.time_to_url.display());
    let _ = writeln!(o, "| approval wait | {} |", s.approval_wait.display());
    let _ = writeln!(o, "| clarified in thread | {} |", s.clarified.display());
    let _ = writeln!(
        o,
        "| understood with the LLM | {} |",
        s.llm_assisted.display()
    );
    let _ = writeln!(
        o,
        "| LLM calls / tokens | {} / {} prompt + {} completion |",
        s.llm_calls, s.prompt_tokens, s.completion_tokens
    );
    if !s.by_week.is_empty() {
        let _ = writeln!(
            o,
            "\n| week | action | team | requests |\n| --- | --- | --- | ---: |"
        );
        for w in &s.by_week {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} |",
                w.week,
                w.action,
                team_name(&w.team),
                w.requests
            );
        }
    }

    let q = &r.questions;
    let _ = writeln!(o, "\n## Questions\n");
    let _ = writeln!(o, "| figure | value |\n| --- | --- |");
    let _ = writeln!(o, "| asked | {} |", q.asked);
    let _ = writeln!(o, "| answered | {} |", q.answered.display());
    let _ = writeln!(o, "| escalated to a human | {} |", q.escalated.display());
    let _ = writeln!(o, "| rated helpful | {} |", q.helpful.display());
    if !q.top_unanswered.is_empty() {
        let _ = writeln!(o, "\nTop unanswered topics:\n");
        for t in &q.top_unanswered {
            let _ = writeln!(o, "- {} ({}×)", t.topic, t.asked);
        }
    }

    let _ = writeln!(o, "\n## DORA (production)\n");
    let _ = writeln!(
        o,
        "| scope | deploys | per week | lead time | change failure | time to restore |\n| --- | ---: | ---: | --- | --- | --- |"
    );
    let row = |o: &mut String, name: &str, d: &Dora| {
        let _ = writeln!(
            o,
            "| {name} | {} | {:.2} | {} | {} | {}{} |",
            d.deployments,
            d.per_week,
            d.lead_time.display(),
            d.change_failure.display(),
            d.time_to_restore.display(),
            if d.unrestored > 0 {
                format!(", {} not restored", d.unrestored)
            } else {
                String::new()
            }
        );
    };
    row(&mut o, "all", &r.dora.overall);
    for t in &r.dora.teams {
        row(&mut o, &format!("team {}", team_name(&t.team)), &t.dora);
    }
    for s in &r.dora.services {
        row(&mut o, &s.service, &s.dora);
    }
    let _ = writeln!(
        o,
        "\nLead time covers {} of succeeded deploys (the others' events carried no commit time).",
        r.dora.overall.lead_time_coverage.display()
    );

    let _ = writeln!(
        o,
        "\n## Week by week\n\n| week | requests | deploys | failed | questions |\n| --- | ---: | ---: | ---: | ---: |"
    );
    for w in &r.weeks {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} |",
            w.week, w.requests, w.deployments, w.failed_deployments, w.questions
        );
    }
    if let Some(c) = &r.cost {
        let _ = writeln!(
            o,
            "\n## Cost\n\nWhat the environments and resources Paver created cost a month now, as estimated on their cards ({}).\n\n| team | per month |\n| --- | ---: |",
            c.currency
        );
        for t in &c.teams {
            let _ = writeln!(o, "| {} | {} |", t.team, t.monthly);
        }
        if c.teams.is_empty() {
            let _ = writeln!(o, "| (nothing created yet) | |");
        }
    }
    o
}

/// One CSV row: where the figure belongs, and its value.
struct Row<'a> {
    section: &'a str,
    team: &'a str,
    service: &'a str,
    action: &'a str,
    week: &'a str,
    figure: &'a str,
    value: String,
    num: String,
    den: String,
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// The report as CSV: a header, then one row per figure (overall, per
/// team and service, per week). Durations are milliseconds; a rate's
/// value is its ratio (empty when n/a) beside its numerator and
/// denominator; a percentile's `denominator` is its sample size.
pub fn csv(r: &Report) -> String {
    // Cents, in the report's currency (the figure names it).
    let cost_figure = r
        .cost
        .as_ref()
        .map(|c| format!("monthly_cost_cents_{}", c.currency));
    let mut rows: Vec<Row> = Vec::new();
    let base = |section, figure| Row {
        section,
        team: "",
        service: "",
        action: "",
        week: "",
        figure,
        value: String::new(),
        num: String::new(),
        den: String::new(),
    };
    let count = |section, figure, v: u64| Row {
        value: v.to_string(),
        ..base(section, figure)
    };
    let rate = |section, figure, v: Rate| Row {
        value: v.ratio().map(|x| format!("{x:.4}")).unwrap_or_default(),
        num: v.num.to_string(),
        den: v.den.to_string(),
        ..base(section, figure)
    };
    let pct = |section, p50: &'static str, p90: &'static str, p: Percentiles| {
        [(p50, p.p50_ms), (p90, p.p90_ms)].map(|(f, v)| Row {
            value: v.map(|x| x.to_string()).unwrap_or_default(),
            den: p.n.to_string(),
            ..base(section, f)
        })
    };
    let s = &r.self_service;
    rows.push(count("self_service", "requests", s.requests));
    rows.extend(pct(
        "self_service",
        "time_to_url_p50_ms",
        "time_to_url_p90_ms",
        s.time_to_url,
    ));
    rows.extend(pct(
        "self_service",
        "approval_wait_p50_ms",
        "approval_wait_p90_ms",
        s.approval_wait,
    ));
    rows.push(rate("self_service", "clarified", s.clarified));
    rows.push(rate("self_service", "llm_assisted", s.llm_assisted));
    rows.push(count("self_service", "llm_calls", s.llm_calls));
    rows.push(count("self_service", "prompt_tokens", s.prompt_tokens));
    rows.push(count(
        "self_service",
        "completion_tokens",
        s.completion_tokens,
    ));
    for w in &s.by_week {
        rows.push(Row {
            team: w.team.as_deref().unwrap_or(""),
            action: &w.action,
            week: &w.week,
            ..count("requests", "requests", w.requests)
        });
    }
    let q = &r.questions;
    rows.push(count("questions", "asked", q.asked));
    rows.push(rate("questions", "answered", q.answered));
    rows.push(rate("questions", "escalated", q.escalated));
    rows.push(rate("questions", "helpful", q.helpful));
    for t in &q.top_unanswered {
        rows.push(Row {
            action: &t.topic,
            ..count("unanswered_topic", "asked", t.asked)
        });
    }
    // Sections `dora` (everyone), `dora_team` and `dora_service`, so a
    // team or service without an owner is not read as the overall figure.
    let dora = |section: &'static str, d: &Dora| -> Vec<Row<'static>> {
        let mut v = vec![
            count(section, "deployments", d.deployments),
            Row {
                value: format!("{:.2}", d.per_week),
                ..base(section, "deployments_per_week")
            },
        ];
        v.extend(pct(
            section,
            "lead_time_p50_ms",
            "lead_time_p90_ms",
            d.lead_time,
        ));
        v.push(rate(section, "lead_time_coverage", d.lead_time_coverage));
        v.push(rate(section, "change_failure", d.change_failure));
        v.extend(pct(
            section,
            "time_to_restore_p50_ms",
            "time_to_restore_p90_ms",
            d.time_to_restore,
        ));
        v.push(count(section, "unrestored", d.unrestored));
        v
    };
    rows.extend(dora("dora", &r.dora.overall));
    for t in &r.dora.teams {
        let name = t.team.as_deref().unwrap_or("");
        rows.extend(
            dora("dora_team", &t.dora)
                .into_iter()
                .map(|x| Row { team: name, ..x }),
        );
    }
    for s in &r.dora.services {
        let team = s.team.as_deref().unwrap_or("");
        rows.extend(dora("dora_service", &s.dora).into_iter().map(|x| Row {
            team,
            service: &s.service,
            ..x
        }));
    }
    for w in &r.weeks {
        for (figure, v) in [
            ("requests", w.requests),
            ("deployments", w.deployments),
            ("failed_deployments", w.failed_deployments),
            ("questions", w.questions),
        ] {
            rows.push(Row {
                week: &w.week,
                ..count("week", figure, v)
            });
        }
    }
    if let (Some(c), Some(figure)) = (&r.cost, cost_figure.as_deref()) {
        let teams = c.teams.iter().map(|t| (t.team.as_str(), t.monthly_cents));
        for (team, cents) in teams.chain([("", c.monthly_total_cents)]) {
            rows.push(Row {
                section: "cost",
                team,
                service: "",
                action: "",
                week: "",
                figure,
                value: cents.to_string(),
                num: String::new(),
                den: String::new(),
            });
        }
    }
    let mut o =
        String::from("section,team,service,action,week,figure,value,numerator,denominator\n");
    for x in rows {
        let _ = writeln!(
            o,
            "{},{},{},{},{},{},{},{},{}",
            x.section,
            csv_field(x.team),
            csv_field(x.service),
            csv_field(x.action),
            x.week,
            x.figure,
            x.value,
            x.num,
            x.den
        );
    }
    o
}
