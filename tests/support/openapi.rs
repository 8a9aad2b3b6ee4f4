//! Contract checks: a request Paver sent (method, path, query, JSON body)
//! against the operation it targets in a real OpenAPI 3 / Swagger 2
//! description, read in place from ../shared/corpus. Paths must exist,
//! methods must be declared, required parameters present, query parameters
//! known, and bodies must match their schema: types, required fields,
//! enums, and no property the schema does not declare (stricter than the
//! server, to catch misspelled fields).

use serde_json::Value;

pub struct Spec {
    doc: Value,
    /// Where the description was read from.
    source: String,
    /// The base path the API is mounted under (Backstage's specs do not
    /// carry it: `/api/scaffolder`); stripped before matching.
    prefix: String,
}

/// One request as a fake server recorded it.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub body: Option<Value>,
    pub raw_body: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl Spec {
    pub fn load(path: &str, prefix: &str) -> Spec {
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("{path} (keep ../shared beside this checkout): {e}"));
        Spec {
            doc: serde_json::from_str(&text).expect("the spec is JSON"),
            source: path.to_owned(),
            prefix: prefix.to_owned(),
        }
    }

    fn resolve<'a>(&'a self, mut v: &'a Value) -> &'a Value {
        for _ in 0..10 {
            match v.get("$ref").and_then(Value::as_str) {
                Some(r) => {
                    let ptr = r.trim_start_matches('#');
                    v = self
                        .doc
                        .pointer(ptr)
                        .unwrap_or_else(|| panic!("unresolvable $ref {r}"));
                }
                None => return v,
            }
        }
        v
    }

    /// The path templates a concrete path matches, most literal segments first.
    pub fn templates(&self, path: &str) -> Vec<String> {
        let Some(path) = path.strip_prefix(&self.prefix) else {
            return Vec::new();
        };
        let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
        let mut found: Vec<(usize, String)> = Vec::new();
        for tpl in self.doc["paths"]
            .as_object()
            .into_iter()
            .flat_map(|o| o.keys())
        {
            let t: Vec<&str> = tpl.trim_matches('/').split('/').collect();
            if t.len() != segs.len() {
                continue;
            }
            let mut literal = 0;
            let ok = t.iter().zip(&segs).all(|(a, b)| {
                if a.starts_with('{') && a.ends_with('}') {
                    !b.is_empty()
                } else {
                    literal += 1;
                    a == b
                }
            });
            if ok {
                found.push((literal, tpl.clone()));
            }
        }
        found.sort_by_key(|f| std::cmp::Reverse(f.0));
        found.into_iter().map(|(_, t)| t).collect()
    }

    /// Checks one request; returns the operationId.
    pub fn check(&self, r: &Recorded) -> Result<String, String> {
        let method = r.method.to_lowercase();
        let candidates = self.templates(&r.path);
        if candidates.is_empty() {
            return Err(format!("{} {}: no such path in the spec", r.method, r.path));
        }
        // Templates like /{name} and /{application.metadata.name} both
        // match: the one declaring the method is the operation.
        let tpl = candidates
            .iter()
            .find(|t| self.doc["paths"][t.as_str()].get(&method).is_some())
            .ok_or_else(|| format!("{} {}: method not declared", r.method, candidates[0]))?
            .clone();
        let item = &self.doc["paths"][&tpl];
        let op = &item[&method];
        let id = op["operationId"].as_str().unwrap_or("?").to_owned();
        let mut params: Vec<&Value> = Vec::new();
        for p in item
            .get("parameters")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .chain(
                op.get("parameters")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten(),
            )
        {
            params.push(self.resolve(p));
        }
        let mut errors = Vec::new();
        let mut body_schema: Option<(&Value, bool)> = None;
        for p in &params {
            let name = p["name"].as_str().unwrap_or("");
            let required = p["required"].as_bool().unwrap_or(false);
            match p["in"].as_str().unwrap_or("") {
                "query" => {
                    let v = r.query(name);
                    if required && v.is_none() {
                        errors.push(format!("query parameter {name} is required"));
                    }
                    if let Some(v) = v {
                        let ty = p
                            .get("schema")
                            .map(|s| self.resolve(s))
                            .unwrap_or(p)
                            .get("type")
                            .and_then(Value::as_str)
                            .unwrap_or("string");
                        if ty == "integer" && v.parse::<i64>().is_err() {
                            errors.push(format!("query parameter {name}={v} is not an integer"));
                        }
                    }
                }
                "body" => body_schema = Some((&p["schema"], required)),
                _ => {}
            }
        }
        for (k, _) in &r.query {
            let known = params
                .iter()
                .any(|p| p["in"] == "query" && p["name"].as_str() == Some(k.as_str()));
            if !known {
                errors.push(format!("query parameter {k} is not declared"));
            }
        }
        if let Some(rb) = op.get("requestBody") {
            let rb = self.resolve(rb);
            let schema = &rb["content"]["application/json"]["schema"];
            body_schema = Some((schema, rb["required"].as_bool().unwrap_or(false)));
        }
        match (body_schema, &r.body) {
            (Some((_, true)), None) => errors.push("a body is required".into()),
            (Some((schema, _)), Some(body)) => self.validate(schema, body, "body", &mut errors),
            (None, Some(_)) => errors.push("the operation takes no body".into()),
            _ => {}
        }
        if errors.is_empty() {
            Ok(id)
        } else {
            Err(format!(
                "{} {} ({id}): {}",
                r.method,
                r.path,
                errors.join("; ")
            ))
        }
    }

    pub fn validate(&self, schema: &Value, v: &Value, at: &str, errors: &mut Vec<String>) {
        let s = self.resolve(schema);
        if let Some(all) = s.get("allOf").and_then(Value::as_array) {
            for sub in all {
                self.validate(sub, v, at, errors);
            }
        }
        for key in ["oneOf", "anyOf"] {
            if let Some(any) = s.get(key).and_then(Value::as_array) {
                let ok = any.iter().any(|sub| {
                    let mut e = Vec::new();
                    self.validate(sub, v, at, &mut e);
                    e.is_empty()
                });
                if !ok {
                    errors.push(format!("{at}: matches none of {key}"));
                }
            }
        }
        if let Some(e) = s.get("enum").and_then(Value::as_array) {
            if !e.contains(v) {
                errors.push(format!("{at}: {v} is not one of {e:?}"));
            }
        }
        let ty = s.get("type").and_then(Value::as_str);
        let type_ok = match ty {
            None => true,
            Some("string") => v.is_string(),
            Some("integer") => v.is_i64() || v.is_u64(),
            Some("number") => v.is_number(),
            Some("boolean") => v.is_boolean(),
            Some("array") => v.is_array(),
            Some("object") => v.is_object(),
            Some(_) => true,
        };
        if !type_ok {
            errors.push(format!("{at}: {v} is not of type {}", ty.unwrap_or("?")));
            return;
        }
        if let Some(obj) = v.as_object() {
            let props = s.get("properties").and_then(Value::as_object);
            for req in s
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let k = req.as_str().unwrap_or("");
                if !obj.contains_key(k) {
                    errors.push(format!("{at}: required property {k} is missing"));
                }
            }
            for (k, val) in obj {
                match props.and_then(|p| p.get(k)) {
                    Some(ps) => self.validate(ps, val, &format!("{at}.{k}"), errors),
                    None => match s.get("additionalProperties") {
                        Some(Value::Bool(false)) => {
                            errors.push(format!("{at}: property {k} is not allowed"))
                        }
                        Some(ap @ Value::Object(_)) => {
                            self.validate(ap, val, &format!("{at}.{k}"), errors)
                        }
                        // Strict: a declared shape with an undeclared field
                        // is most likely a misspelling.
                        _ if props.is_some() => {
                            errors.push(format!("{at}: property {k} is not in the schema"))
                        }
                        _ => {}
                    },
                }
            }
        }
        if let (Some(items), Some(arr)) = (s.get("items"), v.as_array()) {
            for (i, x) in arr.iter().enumerate() {
                self.validate(items, x, &format!("{at}[{i}]"), errors);
            }
        }
    }
}

/// Checks every request against the spec; panics listing all violations.
/// With PAVER_CONTRACT_DUMP=FILE the requests are also appended to FILE as
/// JSON lines, for `scripts/prism_replay.py` to replay against Prism.
pub fn assert_conform(spec: &Spec, requests: &[Recorded]) -> Vec<String> {
    if let Ok(file) = std::env::var("PAVER_CONTRACT_DUMP") {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&file)
            .expect("the dump file opens");
        for r in requests {
            let line = serde_json::json!({
                "spec": spec.source,
                "prefix": spec.prefix,
                "method": r.method,
                "path": r.path,
                "query": r.query,
                "content_type": r.header("content-type"),
                "authorization": r.header("authorization").is_some(),
                "body": String::from_utf8_lossy(&r.raw_body),
            });
            writeln!(f, "{line}").expect("the dump file is writable");
        }
    }
    let mut ops = Vec::new();
    let mut bad = Vec::new();
    for r in requests {
        match spec.check(r) {
            Ok(id) => ops.push(id),
            Err(e) => bad.push(e),
        }
    }
    assert!(
        bad.is_empty(),
        "requests that break the API description:\n{}",
        bad.join("\n")
    );
    ops
}
