//! A model's proposal through the same checks as a rules parse: names are
//! re-resolved through the catalog index (so `Postgres`, `prod` and
//! `odrer-service` come out as the parser would write them); facts the
//! message does not contain (a service, environment, version, replica count,
//! template or new name the user never gave) are not taken from the model but
//! asked for, and resources nobody asked for are dropped; unknown or invalid
//! values become `clarify`; only a broken shape asks for a repair.

use serde_json::{Map, Value};

use crate::domain::{
    Action, ActionKind, Environment, Field, ResourceKind, ScorecardTarget, ServiceName, TeamName,
    TemplateName, Version,
};
use crate::nlu::index::{CatalogIndex, ServiceMatch};
use crate::nlu::lexicon::{number_word, resource_phrase};
use crate::nlu::rules::Mentions;

/// The outcome of checking one answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Checked {
    /// A valid action (possibly `clarify`), normalized like a rules parse.
    Valid(Action),
    /// The answer does not have the schema's shape: worth one repair.
    Violation(String),
}

/// What the checks need besides the answer.
pub(crate) struct Ground<'a> {
    pub index: &'a CatalogIndex,
    /// What the user's message names.
    pub mentions: &'a Mentions,
    /// The proposal a follow-up amends: its values count as said.
    pub context: Option<&'a Action>,
    /// The message, for `ask` without a question.
    pub text: &'a str,
}

/// Why a model's answer holds no JSON to check; the text goes back to the
/// model in the repair prompt.
#[derive(Debug, thiserror::Error)]
pub enum NotJson {
    #[error("the answer is not valid JSON ({0})")]
    Invalid(serde_json::Error),
    #[error("the answer is not a JSON object")]
    NoObject,
}

/// Pulls the JSON object out of a model's text: bare, fenced in ``` or
/// surrounded by prose.
pub fn extract_json(text: &str) -> Result<Value, NotJson> {
    let t = text.trim();
    if let Ok(v) = serde_json::from_str::<Value>(t) {
        return Ok(v);
    }
    let (start, end) = (t.find('{'), t.rfind('}'));
    match (start, end) {
        (Some(s), Some(e)) if e > s => {
            serde_json::from_str::<Value>(&t[s..=e]).map_err(NotJson::Invalid)
        }
        _ => Err(NotJson::NoObject),
    }
}

fn lower(s: &str) -> String {
    s.trim().to_lowercase()
}

/// Whether the message holds `value` as a whole word (hyphens or spaces
/// between its parts): a value the model claims the user gave.
fn said(g: &Ground<'_>, value: &str) -> bool {
    let text = g.text.to_lowercase();
    let value = value.trim().to_lowercase();
    !value.is_empty()
        && [value.clone(), value.replace('-', " ")]
            .iter()
            .any(|v| contains_word(&text, v))
}

fn contains_word(text: &str, needle: &str) -> bool {
    text.match_indices(needle).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + needle.len()..].chars().next();
        !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
    })
}

/// A service name as the model wrote it, resolved like the parser does.
pub(crate) fn resolve_service(index: &CatalogIndex, raw: &str) -> ServiceMatch {
    let s = lower(raw).replace([' ', '_'], "-");
    let s = s.trim_matches('-');
    if let Some(n) = index.exact(&[s]) {
        return ServiceMatch::Exact(n.clone());
    }
    if !s.contains('-') {
        let partial = index.partial(s);
        match partial.len() {
            1 => return ServiceMatch::Fuzzy(partial.into_iter().next().expect("one")),
            0 => {}
            _ => return ServiceMatch::Ambiguous(partial),
        }
    }
    match index.typo(s) {
        Ok(n) => ServiceMatch::Fuzzy(n),
        Err(near) => ServiceMatch::Unknown(near),
    }
}

fn environment(raw: &str) -> Option<Environment> {
    let s = lower(raw);
    let s = s
        .trim_end_matches(" environment")
        .trim_end_matches(" env")
        .trim();
    Environment::from_word(s).or_else(|| match s {
        "pr preview" | "review app" | "review" | "pr" => Some(Environment::Preview),
        _ if s.starts_with("pr-") => Some(Environment::Preview),
        _ => None,
    })
}

fn resource(raw: &str) -> Option<ResourceKind> {
    let s = lower(raw);
    let mut words = s.split_whitespace();
    let first = words.next().unwrap_or("");
    let second = words.next().unwrap_or("");
    resource_phrase(first, second)
        .or_else(|| ResourceKind::from_word(&s))
        .or_else(|| ResourceKind::from_word(first))
}

/// A field problem: missing or invalid values clarify, wrong types repair.
enum Problem {
    Clarify(Field, Vec<String>),
    Violation(String),
}

type Res<T> = Result<T, Problem>;

struct Reader<'a, 'g> {
    obj: &'a Map<String, Value>,
    g: &'a Ground<'g>,
}

impl Reader<'_, '_> {
    fn get(&self, key: &str) -> Option<&Value> {
        self.obj.get(key).filter(|v| !v.is_null())
    }

    fn string(&self, key: &str, field: Field) -> Res<Option<String>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) if field == Field::Version => Ok(Some(n.to_string())),
            Some(other) => Err(Problem::Violation(format!(
                "`{key}` must be a string, not {other}"
            ))),
        }
    }

    fn service_at(&self, key: &str, field: Field) -> Res<ServiceName> {
        let Some(raw) = self.string(key, field)? else {
            return Err(Problem::Clarify(field, self.candidates()));
        };
        let name = match resolve_service(self.g.index, &raw) {
            ServiceMatch::Exact(n) | ServiceMatch::Fuzzy(n) => n,
            ServiceMatch::Ambiguous(c) | ServiceMatch::Unknown(c) => {
                return Err(Problem::Clarify(
                    field,
                    c.into_iter().map(String::from).collect(),
                ))
            }
        };
        // The model may only pick a service the conversation named.
        let m = self.g.mentions;
        let grounded = m.exact.contains(&name)
            || m.fuzzy.contains(&name)
            || self.g.context.and_then(Action::service) == Some(&name);
        if grounded {
            Ok(name)
        } else {
            Err(Problem::Clarify(field, self.candidates()))
        }
    }

    fn service(&self) -> Res<ServiceName> {
        self.service_at("service", Field::Service)
    }

    /// The names the message could mean, for a clarification.
    fn candidates(&self) -> Vec<String> {
        let m = self.g.mentions;
        let list = if !m.ambiguous.is_empty() {
            &m.ambiguous
        } else {
            &m.near
        };
        list.iter().map(|s| s.to_string()).collect()
    }

    /// An environment the model gives; one the message never names counts
    /// as not given (a required one then becomes a clarification).
    fn env_at(&self, key: &str, field: Field) -> Res<Option<Environment>> {
        match self.string(key, field)? {
            None => Ok(None),
            Some(raw) => {
                let e = environment(&raw).ok_or(Problem::Clarify(field, vec![]))?;
                Ok(self.env_said(e).then_some(e))
            }
        }
    }

    /// Whether the message (or the proposal it amends) names `e`.
    fn env_said(&self, e: Environment) -> bool {
        let m = self.g.mentions;
        let in_context = match self.g.context {
            Some(Action::Promote { from, to, .. }) => *from == e || *to == e,
            Some(c) => c.environment() == Some(e),
            None => false,
        };
        in_context
            || m.environment == Some(e)
            || m.from == Some(e)
            || m.to == Some(e)
            || m.words.iter().any(|w| environment(w) == Some(e))
    }

    fn env(&self) -> Res<Environment> {
        self.env_at("environment", Field::Environment)?
            .ok_or(Problem::Clarify(Field::Environment, vec![]))
    }

    fn resources(&self) -> Res<Vec<ResourceKind>> {
        let items: Vec<&Value> = match self.get("resources") {
            None => vec![],
            Some(Value::Array(a)) => a.iter().collect(),
            Some(v @ Value::String(_)) => vec![v],
            Some(other) => {
                return Err(Problem::Violation(format!(
                    "`resources` must be a list of resource types, not {other}"
                )))
            }
        };
        let mut out = Vec::new();
        for item in items {
            let s = match item {
                Value::String(s) => s.as_str(),
                // `{"type": "postgres", "size": …}`: the type is what counts.
                Value::Object(o) => o.get("type").and_then(Value::as_str).unwrap_or(""),
                other => {
                    return Err(Problem::Violation(format!(
                        "`resources` items must be strings, not {other}"
                    )))
                }
            };
            let k = resource(s).ok_or(Problem::Clarify(Field::Resources, vec![]))?;
            // A resource nobody asked for is the model's idea: left out (the
            // user can still say "also add redis").
            let in_context = matches!(
                self.g.context,
                Some(Action::CreateEnvironment { resources, .. } | Action::AddResource { resources, .. })
                    if resources.contains(&k)
            );
            let asked = self.g.mentions.resources.contains(&k) || said(self.g, s);
            if !(in_context || asked) {
                tracing::debug!(resource = %k, "dropping a resource the message does not name");
                continue;
            }
            if !out.contains(&k) {
                out.push(k);
            }
        }
        Ok(out)
    }

    fn version(&self) -> Res<Option<Version>> {
        match self.string("version", Field::Version)? {
            None => Ok(None),
            Some(raw) => match lower(&raw).as_str() {
                "latest" | "previous" | "last" | "current" => Ok(None),
                _ => {
                    let v = Version::parse(raw.trim())
                        .map_err(|_| Problem::Clarify(Field::Version, vec![]))?;
                    // A version the user never wrote is the model's guess.
                    let in_context = matches!(
                        self.g.context,
                        Some(Action::Deploy { version: Some(c), .. } | Action::Rollback { version: Some(c), .. }) if *c == v
                    );
                    let written =
                        said(self.g, v.as_str()) || said(self.g, &format!("v{}", v.as_str()));
                    if in_context || written {
                        Ok(Some(v))
                    } else {
                        Err(Problem::Clarify(Field::Version, vec![]))
                    }
                }
            },
        }
    }

    fn replicas(&self) -> Res<u32> {
        let n = self.replicas_value()?;
        // A count the user never gave is the model's guess.
        let in_context =
            matches!(self.g.context, Some(Action::Scale { replicas, .. }) if *replicas == n);
        let given = self.g.mentions.words.iter().any(|w| {
            let digits = w.strip_suffix('x').unwrap_or(w);
            digits.parse::<u32>().ok() == Some(n) || number_word(w) == Some(n)
        });
        if in_context || given {
            Ok(n)
        } else {
            Err(Problem::Clarify(Field::Replicas, vec![]))
        }
    }

    fn replicas_value(&self) -> Res<u32> {
        match self.get("replicas") {
            None => Err(Problem::Clarify(Field::Replicas, vec![])),
            Some(Value::Number(n)) => match n.as_u64() {
                Some(r) if r <= u32::MAX as u64 => Ok(r as u32),
                _ => Err(Problem::Clarify(Field::Replicas, vec![])),
            },
            Some(Value::String(s)) => s
                .trim()
                .parse::<u32>()
                .map_err(|_| Problem::Clarify(Field::Replicas, vec![])),
            Some(other) => Err(Problem::Violation(format!(
                "`replicas` must be a whole number, not {other}"
            ))),
        }
    }

    fn team(&self, key: &str, field: Field) -> Res<Option<TeamName>> {
        let Some(raw) = self.string(key, field)? else {
            return Ok(None);
        };
        let s = lower(&raw).replace(' ', "-");
        let short = s
            .strip_prefix("team-")
            .or_else(|| s.strip_suffix("-team"))
            .unwrap_or(&s);
        self.g
            .index
            .team(&s, true)
            .or_else(|| self.g.index.team(short, true))
            .cloned()
            .map(Some)
            .ok_or(Problem::Clarify(field, vec![]))
    }

    fn template(&self) -> Res<TemplateName> {
        let Some(raw) = self.string("template", Field::Template)? else {
            return Err(Problem::Clarify(
                Field::Template,
                self.g.index.template_names(),
            ));
        };
        let s = lower(&raw);
        let template = if self.g.index.is_template(&s) {
            TemplateName::parse(s.clone()).map_err(|e| Problem::Violation(e.to_string()))?
        } else {
            let words: Vec<&str> = s
                .split(|c: char| !c.is_alphanumeric() && c != '.')
                .filter(|w| !w.is_empty())
                .collect();
            self.g
                .index
                .template(&words)
                .map_err(|c| Problem::Clarify(Field::Template, c))?
        };
        // The template must follow from what the message says (its language
        // words, or the template's name), not from the model's taste.
        let words: Vec<&str> = self.g.mentions.words.iter().map(String::as_str).collect();
        let from_text = self.g.index.template(&words);
        let in_context = matches!(self.g.context, Some(Action::ScaffoldService { template: c, .. }) if *c == template);
        if in_context
            || from_text.as_ref().is_ok_and(|t| *t == template)
            || said(self.g, template.as_str())
            || said(self.g, &s)
        {
            Ok(template)
        } else {
            Err(Problem::Clarify(
                Field::Template,
                from_text
                    .err()
                    .unwrap_or_else(|| self.g.index.template_names()),
            ))
        }
    }

    fn new_name(&self) -> Res<ServiceName> {
        let Some(raw) = self.string("name", Field::Name)? else {
            return Err(Problem::Clarify(Field::Name, vec![]));
        };
        let s = lower(&raw).replace([' ', '_'], "-");
        let name = ServiceName::parse(s).map_err(|_| Problem::Clarify(Field::Name, vec![]))?;
        if self.g.index.service_exists(name.as_str()) {
            return Err(Problem::Clarify(Field::Name, vec![]));
        }
        // The new service's name is the user's to choose, not the model's.
        let in_context =
            matches!(self.g.context, Some(Action::ScaffoldService { name: c, .. }) if *c == name);
        if in_context || said(self.g, name.as_str()) {
            Ok(name)
        } else {
            Err(Problem::Clarify(Field::Name, vec![]))
        }
    }
}

/// Checks one answer (a tool call's arguments or a JSON-mode object).
pub(crate) fn check(answer: &Value, g: &Ground<'_>) -> Checked {
    let Some(outer) = answer.as_object() else {
        return Checked::Violation(format!("the answer must be a JSON object, not {answer}"));
    };
    // `{"proposal": {...}}` as asked; a bare action is accepted too.
    let obj = match outer.get("proposal") {
        Some(Value::Object(p)) => p,
        Some(other) => {
            return Checked::Violation(format!("`proposal` must be an object, not {other}"))
        }
        None if outer.contains_key("action") => outer,
        None => return Checked::Violation("the answer has no `proposal` object".into()),
    };
    let kind = match obj.get("action") {
        Some(Value::String(s)) => {
            let s = lower(s).replace([' ', '-'], "_");
            match ActionKind::from_name(&s) {
                Some(k) => k,
                None if s == "nothing" => ActionKind::Nothing,
                None => {
                    let names: Vec<&str> = ActionKind::ALL.iter().map(|k| k.as_str()).collect();
                    return Checked::Violation(format!(
                        "`action` must be one of {}, not `{s}`",
                        names.join(", ")
                    ));
                }
            }
        }
        Some(other) => {
            return Checked::Violation(format!("`action` must be a string, not {other}"))
        }
        None => return Checked::Violation("the proposal has no `action`".into()),
    };
    let r = Reader { obj, g };
    match build(kind, &r) {
        Ok(a) => Checked::Valid(a),
        Err(Problem::Violation(v)) => Checked::Violation(v),
        Err(Problem::Clarify(field, candidates)) => {
            Checked::Valid(Action::clarify(kind, vec![field], candidates))
        }
    }
}

fn build(kind: ActionKind, r: &Reader<'_, '_>) -> Res<Action> {
    Ok(match kind {
        ActionKind::CreateEnvironment => {
            let service = r.service()?;
            Action::CreateEnvironment {
                environment: r.env()?,
                resources: r.resources()?,
                service,
            }
        }
        ActionKind::AddResource => {
            let service = r.service()?;
            let environment = r.env()?;
            let resources = r.resources()?;
            if resources.is_empty() {
                return Err(Problem::Clarify(Field::Resources, vec![]));
            }
            Action::AddResource {
                service,
                environment,
                resources,
            }
        }
        ActionKind::DestroyEnvironment => {
            let service = r.service()?;
            Action::DestroyEnvironment {
                environment: r.env()?,
                service,
            }
        }
        ActionKind::Deploy | ActionKind::Rollback => {
            let service = r.service()?;
            let environment = r.env()?;
            let version = r.version()?;
            if kind == ActionKind::Deploy {
                Action::Deploy {
                    service,
                    environment,
                    version,
                }
            } else {
                Action::Rollback {
                    service,
                    environment,
                    version,
                }
            }
        }
        ActionKind::Promote => {
            let service = r.service()?;
            let from = r.env_at("from", Field::From)?;
            let to = r.env_at("to", Field::To)?;
            let (from, to) = match (from, to) {
                (Some(f), Some(t)) => (f, t),
                (None, Some(t)) => (
                    t.previous().ok_or(Problem::Clarify(Field::From, vec![]))?,
                    t,
                ),
                (Some(f), None) => (f, f.next().ok_or(Problem::Clarify(Field::To, vec![]))?),
                (None, None) => return Err(Problem::Clarify(Field::To, vec![])),
            };
            if from == to {
                return Err(Problem::Clarify(Field::To, vec![]));
            }
            Action::Promote { service, from, to }
        }
        ActionKind::Scale => {
            let service = r.service()?;
            let environment = r.env()?;
            Action::Scale {
                replicas: r.replicas()?,
                service,
                environment,
            }
        }
        ActionKind::Restart => {
            let service = r.service()?;
            Action::Restart {
                environment: r.env()?,
                service,
            }
        }
        ActionKind::ScaffoldService => {
            let name = r.new_name()?;
            let template = r.template()?;
            Action::ScaffoldService {
                owner: r.team("owner", Field::Owner)?,
                name,
                template,
            }
        }
        ActionKind::Status => {
            let service = r.service()?;
            Action::Status {
                environment: r.env_at("environment", Field::Environment)?,
                service,
            }
        }
        ActionKind::WhoOwns => Action::WhoOwns {
            service: r.service()?,
        },
        ActionKind::Scorecard => {
            if r.get("service").is_some() {
                Action::Scorecard {
                    target: ScorecardTarget::Service {
                        service: r.service()?,
                    },
                }
            } else if r.get("team").is_some() {
                let team = r
                    .team("team", Field::Team)?
                    .ok_or(Problem::Clarify(Field::Team, vec![]))?;
                Action::Scorecard {
                    target: ScorecardTarget::Team { team },
                }
            } else {
                return Err(Problem::Clarify(Field::Service, r.candidates()));
            }
        }
        ActionKind::Ask => {
            let question = r
                .string("question", Field::Question)?
                .unwrap_or_else(|| r.g.text.to_owned());
            Action::Ask {
                question: question.split_whitespace().collect::<Vec<_>>().join(" "),
            }
        }
        ActionKind::Help => Action::Help,
        ActionKind::Nothing => Action::Nothing,
        ActionKind::Clarify => {
            let missing: Vec<Field> = match r.get("missing") {
                Some(Value::Array(a)) => a
                    .iter()
                    .filter_map(|v| serde_json::from_value::<Field>(v.clone()).ok())
                    .collect(),
                Some(v @ Value::String(_)) => serde_json::from_value::<Field>(v.clone())
                    .into_iter()
                    .collect(),
                _ => vec![],
            };
            let missing = if missing.is_empty() {
                vec![Field::Service]
            } else {
                missing
            };
            // Candidates are catalog names only, never the model's inventions.
            let mut candidates: Vec<String> = match r.get("candidates") {
                Some(Value::Array(a)) => a
                    .iter()
                    .filter_map(Value::as_str)
                    .filter_map(|c| match resolve_service(r.g.index, c) {
                        ServiceMatch::Exact(n) => Some(n.to_string()),
                        _ if r.g.index.is_template(c) => Some(c.to_owned()),
                        _ => None,
                    })
                    .collect(),
                _ => vec![],
            };
            candidates.dedup();
            if candidates.is_empty() && missing.contains(&Field::Service) {
                candidates = r.candidates();
            }
            let intent = r
                .get("intent")
                .and_then(Value::as_str)
                .and_then(ActionKind::from_name);
            Action::Clarify {
                missing,
                candidates,
                intent,
            }
        }
    })
}
