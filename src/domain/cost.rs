//! What a new environment or resource costs a month (`[cost]`): a price
//! table per environment and per resource type (the golden path's size of
//! that type), and the estimate of one action, with a line per item.
//!
//! Money is whole cents ([`Cents`]), never a float. An item the table has no
//! price for stays a line without a price: the estimate says it is
//! incomplete rather than guess.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::{Action, Environment, GoldenPath, ResourceKind};

/// An amount of money in cents (hundredths of the currency unit), never
/// negative.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(try_from = "i64", into = "i64")]
pub struct Cents(i64);

/// A price that does not read as an amount of money.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PriceError {
    #[error("`{0}` is negative; a price is 0 or more")]
    Negative(String),
    #[error(
        "`{0}` is not an amount of money (write it like 120 or \"120.50\", at most two decimals)"
    )]
    NotAnAmount(String),
    #[error("`{0}` is too large")]
    TooLarge(String),
}

impl Cents {
    pub const ZERO: Cents = Cents(0);

    /// `None` for a negative amount.
    pub fn new(cents: i64) -> Option<Cents> {
        (cents >= 0).then_some(Cents(cents))
    }

    pub fn get(self) -> i64 {
        self.0
    }

    /// Reads "120", "120.5" or "120.50" (whole units, at most two decimals).
    pub fn parse(text: &str) -> Result<Cents, PriceError> {
        let t = text.trim();
        if t.starts_with('-') {
            return Err(PriceError::Negative(text.into()));
        }
        let (whole, frac) = match t.split_once('.') {
            Some((_, "")) => return Err(PriceError::NotAnAmount(text.into())),
            Some(parts) => parts,
            None => (t, ""),
        };
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || !digits(whole) || !digits(frac) || frac.len() > 2 {
            return Err(PriceError::NotAnAmount(text.into()));
        }
        let whole: i64 = whole
            .parse()
            .map_err(|_| PriceError::TooLarge(text.into()))?;
        let frac: i64 = format!("{frac:0<2}").parse().unwrap_or(0);
        whole
            .checked_mul(100)
            .and_then(|c| c.checked_add(frac))
            .map(Cents)
            .ok_or_else(|| PriceError::TooLarge(text.into()))
    }

    pub fn saturating_add(self, other: Cents) -> Cents {
        Cents(self.0.saturating_add(other.0))
    }
}

impl std::iter::Sum for Cents {
    fn sum<I: Iterator<Item = Cents>>(iter: I) -> Cents {
        iter.fold(Cents::ZERO, Cents::saturating_add)
    }
}

impl TryFrom<i64> for Cents {
    type Error = PriceError;
    fn try_from(value: i64) -> Result<Self, PriceError> {
        Cents::new(value).ok_or_else(|| PriceError::Negative(value.to_string()))
    }
}

impl From<Cents> for i64 {
    fn from(value: Cents) -> i64 {
        value.0
    }
}

/// A price as written in the config: `120`, `120.5` or `"120.50"` (whole
/// currency units). A float is read through its shortest decimal form, so
/// `19.99` is 1999 cents exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "PriceText", into = "String")]
pub struct Price(pub Cents);

#[derive(Deserialize)]
#[serde(untagged)]
enum PriceText {
    Whole(i64),
    Decimal(f64),
    Text(String),
}

impl TryFrom<PriceText> for Price {
    type Error = PriceError;
    fn try_from(value: PriceText) -> Result<Self, PriceError> {
        let text = match value {
            PriceText::Whole(n) => n.to_string(),
            PriceText::Decimal(f) => f.to_string(),
            PriceText::Text(t) => t,
        };
        Cents::parse(&text).map(Price)
    }
}

impl From<Price> for String {
    fn from(value: Price) -> String {
        let c = value.0.get();
        format!("{}.{:02}", c / 100, c % 100)
    }
}

/// An ISO 4217 currency code ("USD"), as configured.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency(String);

impl Currency {
    pub fn parse(code: &str) -> Result<Currency, String> {
        if code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase()) {
            Ok(Currency(code.to_owned()))
        } else {
            Err(format!(
                "`{code}` is not a currency code (three capital letters, like USD or EUR)"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// "$1,234", "$12.50", "€80", "CHF 80": whole amounts without cents.
    pub fn format(&self, amount: Cents) -> String {
        let c = amount.get();
        let mut whole = (c / 100).to_string();
        let mut grouped = String::new();
        while whole.len() > 3 {
            let tail = whole.split_off(whole.len() - 3);
            grouped = format!(",{tail}{grouped}");
        }
        let mut number = format!("{whole}{grouped}");
        if c % 100 != 0 {
            number = format!("{number}.{:02}", c % 100);
        }
        match self.0.as_str() {
            "USD" => format!("${number}"),
            "EUR" => format!("€{number}"),
            "GBP" => format!("£{number}"),
            code => format!("{code} {number}"),
        }
    }
}

impl Default for Currency {
    fn default() -> Self {
        Currency("USD".into())
    }
}

impl TryFrom<String> for Currency {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        Currency::parse(&value)
    }
}

impl From<Currency> for String {
    fn from(value: Currency) -> String {
        value.0
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `[cost]`: monthly prices. Absent: the built-in table below. A map that is
/// written replaces the built-in one whole, so an item left out of it has no
/// price (and estimates that need it say they are incomplete).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PriceTable {
    pub currency: Currency,
    /// What a new environment itself costs a month (the service's compute
    /// there), by environment.
    pub environments: BTreeMap<Environment, Price>,
    /// What one resource of the golden path's size of its type costs a month.
    pub resources: BTreeMap<ResourceKind, Price>,
}

impl Default for PriceTable {
    fn default() -> Self {
        let p = |units: i64| Price(Cents(units * 100));
        PriceTable {
            currency: Currency::default(),
            environments: BTreeMap::from([
                (Environment::Dev, p(40)),
                (Environment::Staging, p(150)),
                (Environment::Production, p(600)),
                (Environment::Preview, p(25)),
            ]),
            resources: BTreeMap::from([
                (ResourceKind::Postgres, p(120)),
                (ResourceKind::Mysql, p(110)),
                (ResourceKind::Redis, p(35)),
                (ResourceKind::Kafka, p(250)),
                (ResourceKind::Rabbitmq, p(60)),
                (ResourceKind::S3, p(10)),
                (ResourceKind::Mongodb, p(140)),
                (ResourceKind::Opensearch, p(300)),
            ]),
        }
    }
}

impl PriceTable {
    /// Items without a price (estimates that need them say they are
    /// incomplete); each line names its key. Not an error: a table may
    /// leave out what the platform does not offer.
    pub fn gaps(&self) -> Vec<String> {
        let mut out = Vec::new();
        for e in Environment::ALL {
            if !self.environments.contains_key(&e) {
                out.push(format!(
                    "cost.environments: no price for `{e}`: estimates of a new {e} environment say they are incomplete"
                ));
            }
        }
        for k in ResourceKind::ALL {
            if !self.resources.contains_key(&k) {
                out.push(format!(
                    "cost.resources: no price for `{k}`: estimates that need one say they are incomplete"
                ));
            }
        }
        out
    }

    pub fn format(&self, amount: Cents) -> String {
        self.currency.format(amount)
    }
}

/// What one line of an estimate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CostItem {
    /// The new environment itself.
    Environment(Environment),
    /// One resource of the golden path's size.
    Resource(ResourceKind),
}

/// One line: an item and its monthly price, `None` when the table has none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CostLine {
    pub item: CostItem,
    pub cents: Option<Cents>,
}

/// The estimated monthly cost of what one action creates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonthlyCost {
    pub currency: Currency,
    pub lines: Vec<CostLine>,
}

impl MonthlyCost {
    /// The sum of the lines that have a price (a lower bound when
    /// [`Self::is_complete`] is false).
    pub fn known(&self) -> Cents {
        self.lines.iter().filter_map(|l| l.cents).sum()
    }

    /// Whether every line has a price.
    pub fn is_complete(&self) -> bool {
        self.lines.iter().all(|l| l.cents.is_some())
    }

    /// The card's words: "~$270/month (staging environment $150 +
    /// PostgreSQL $120)", or, when a price is missing, "incomplete: no price
    /// for Kafka; the rest ~$150/month (staging environment $150)".
    /// `golden` names the resources as the card does.
    pub fn describe(&self, golden: &GoldenPath) -> String {
        let name = |item: CostItem| match item {
            CostItem::Environment(e) => format!("{e} environment"),
            CostItem::Resource(k) => golden
                .size(k)
                .map(|s| s.title.clone())
                .unwrap_or_else(|| k.to_string()),
        };
        let priced: Vec<String> = self
            .lines
            .iter()
            .filter_map(|l| {
                l.cents
                    .map(|c| format!("{} {}", name(l.item), self.currency.format(c)))
            })
            .collect();
        let total = format!("~{}/month", self.currency.format(self.known()));
        let breakdown = if priced.len() > 1 {
            format!(" ({})", priced.join(" + "))
        } else {
            String::new()
        };
        let missing: Vec<String> = self
            .lines
            .iter()
            .filter(|l| l.cents.is_none())
            .map(|l| name(l.item))
            .collect();
        if missing.is_empty() {
            return format!("{total}{breakdown}");
        }
        let none = format!("no price for {}", missing.join(", "));
        if priced.is_empty() {
            format!("unknown: {none} in the price table")
        } else {
            let breakdown = format!(" ({})", priced.join(" + "));
            format!("incomplete: {none} in the price table; the rest {total}{breakdown}")
        }
    }
}

/// The monthly cost of what `action` creates: a new environment (its own
/// price, then one line per resource) or resources added to one. `None` for
/// actions that create nothing: they cost nothing new and the card says
/// nothing of cost.
pub fn estimate(action: &Action, prices: &PriceTable) -> Option<MonthlyCost> {
    let mut items = Vec::new();
    match action {
        Action::CreateEnvironment {
            environment,
            resources,
            ..
        } => {
            items.push(CostItem::Environment(*environment));
            items.extend(resources.iter().map(|r| CostItem::Resource(*r)));
        }
        Action::AddResource { resources, .. } if !resources.is_empty() => {
            items.extend(resources.iter().map(|r| CostItem::Resource(*r)));
        }
        _ => return None,
    }
    let lines = items
        .into_iter()
        .map(|item| CostLine {
            item,
            cents: match item {
                CostItem::Environment(e) => prices.environments.get(&e),
                CostItem::Resource(k) => prices.resources.get(&k),
            }
            .map(|p| p.0),
        })
        .collect();
    Some(MonthlyCost {
        currency: prices.currency.clone(),
        lines,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn action(json: serde_json::Value) -> Action {
        serde_json::from_value(json).unwrap()
    }

    fn staging_with(resources: &[&str]) -> Action {
        action(serde_json::json!({
            "action": "create_environment", "service": "order-service",
            "environment": "staging", "resources": resources,
        }))
    }

    #[test]
    fn money_is_read_exactly_and_never_negative() {
        assert_eq!(Cents::parse("120").unwrap().get(), 12_000);
        assert_eq!(Cents::parse("120.5").unwrap().get(), 12_050);
        assert_eq!(Cents::parse("19.99").unwrap().get(), 1_999);
        assert_eq!(Cents::parse("0").unwrap().get(), 0);
        assert!(matches!(Cents::parse("-1"), Err(PriceError::Negative(_))));
        for bad in [
            "",
            "abc",
            "1.234",
            "1.",
            ".5x",
            "1e3",
            "99999999999999999999",
        ] {
            assert!(Cents::parse(bad).is_err(), "{bad}");
        }
        let t: PriceTable = toml::from_str(
            "currency = \"EUR\"\n[environments]\nstaging = 19.99\n[resources]\npostgres = \"120.50\"\nredis = 35\n",
        )
        .unwrap();
        assert_eq!(t.environments[&Environment::Staging].0.get(), 1_999);
        assert_eq!(t.resources[&ResourceKind::Postgres].0.get(), 12_050);
        assert_eq!(t.resources[&ResourceKind::Redis].0.get(), 3_500);
        for bad in [
            "[resources]\npostgres = -5\n",
            "[resources]\npostgres = \"-5.00\"\n",
            "[resources]\npostgress = 5\n",
            "[environments]\nqa = 5\n",
            "currency = \"dollars\"\n",
            "[resources]\npostgres = 1.999\n",
            "shipping = 5\n",
        ] {
            assert!(toml::from_str::<PriceTable>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn amounts_read_as_people_write_them() {
        let usd = Currency::default();
        assert_eq!(usd.format(Cents(27_000)), "$270");
        assert_eq!(usd.format(Cents(123_456_700)), "$1,234,567");
        assert_eq!(usd.format(Cents(1_999)), "$19.99");
        assert_eq!(Currency::parse("EUR").unwrap().format(Cents(8_000)), "€80");
        assert_eq!(
            Currency::parse("CHF").unwrap().format(Cents(8_005)),
            "CHF 80.05"
        );
    }

    #[test]
    fn a_new_environment_costs_itself_and_each_resource() {
        let prices = PriceTable::default();
        let golden = GoldenPath::default();
        let cost = estimate(&staging_with(&["postgres"]), &prices).unwrap();
        assert_eq!(cost.known().get(), 27_000);
        assert!(cost.is_complete());
        assert_eq!(
            cost.describe(&golden),
            "~$270/month (staging environment $150 + PostgreSQL $120)"
        );
        let bare = estimate(&staging_with(&[]), &prices).unwrap();
        assert_eq!(bare.describe(&golden), "~$150/month");
        let add = action(serde_json::json!({
            "action": "add_resource", "service": "order-service",
            "environment": "staging", "resources": ["redis", "s3"],
        }));
        assert_eq!(
            estimate(&add, &prices).unwrap().describe(&golden),
            "~$45/month (Redis $35 + S3 bucket $10)"
        );
    }

    #[test]
    fn actions_that_create_nothing_cost_nothing() {
        let prices = PriceTable::default();
        for a in [
            serde_json::json!({"action": "deploy", "service": "order-service", "environment": "staging"}),
            serde_json::json!({"action": "destroy_environment", "service": "order-service", "environment": "staging"}),
            serde_json::json!({"action": "scale", "service": "order-service", "environment": "staging", "replicas": 3}),
            serde_json::json!({"action": "status", "service": "order-service"}),
        ] {
            assert_eq!(estimate(&action(a.clone()), &prices), None, "{a}");
        }
    }

    #[test]
    fn an_unknown_price_makes_the_estimate_incomplete_not_made_up() {
        let golden = GoldenPath::default();
        let mut prices = PriceTable::default();
        prices.resources.remove(&ResourceKind::Kafka);
        let cost = estimate(&staging_with(&["postgres", "kafka"]), &prices).unwrap();
        assert!(!cost.is_complete());
        assert_eq!(cost.known().get(), 27_000);
        assert_eq!(
            cost.describe(&golden),
            "incomplete: no price for Kafka in the price table; the rest ~$270/month (staging environment $150 + PostgreSQL $120)"
        );
        prices.environments.clear();
        let cost = estimate(&staging_with(&["kafka"]), &prices).unwrap();
        assert_eq!(
            cost.describe(&golden),
            "unknown: no price for staging environment, Kafka in the price table"
        );
        assert_eq!(prices.gaps().len(), 5);
        assert!(PriceTable::default().gaps().is_empty());
    }
}
