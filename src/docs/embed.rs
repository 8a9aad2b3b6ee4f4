//! Embedding similarity beside BM25: `[docs.embeddings]` names any
//! OpenAI-compatible `/embeddings` endpoint; every section is embedded once
//! (vectors are kept by the hash of what was embedded, so a refresh embeds
//! only the sections that changed) and each question when it is asked.
//! [`super::Docs`] fuses the two rankings (reciprocal rank fusion); the
//! "don't know" decision stays lexical, so a question the docs do not
//! answer is not answered because some section is *near* it.
//!
//! Without the endpoint, or when it fails, retrieval is BM25 alone: the
//! docs never stop answering because the embeddings server is down.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use url::Url;

/// `[docs.embeddings]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingsConfig {
    /// The server's base URL, e.g. `https://api.openai.com/v1`;
    /// `{base_url}/embeddings` is called.
    pub base_url: Url,
    pub model: String,
    /// The environment variable holding the API key (sent as a bearer
    /// token); none for a local server. The key itself is never in the
    /// config file.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// For one call (a batch of sections, or one question). Default 10.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: f64,
    /// Sections per call. Default 32.
    #[serde(default = "default_batch")]
    pub batch: usize,
}

fn default_timeout_secs() -> f64 {
    10.0
}

fn default_batch() -> usize {
    32
}

impl EmbeddingsConfig {
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !matches!(self.base_url.scheme(), "http" | "https") {
            out.push("docs.embeddings.base_url: must be http(s)".into());
        }
        if self.model.trim().is_empty() {
            out.push("docs.embeddings.model: must name a model".into());
        }
        if !(self.timeout_secs.is_finite() && self.timeout_secs > 0.0) {
            out.push("docs.embeddings.timeout_secs: must be above 0".into());
        }
        if !(1..=2048).contains(&self.batch) {
            out.push("docs.embeddings.batch: must be 1–2048".into());
        }
        if let Some(var) = &self.api_key_env {
            if std::env::var_os(var).is_none() {
                out.push(format!("docs.embeddings.api_key_env: ${var} is not set"));
            }
        }
        out
    }
}

/// Why no vectors came back.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EmbedError {
    #[error("timed out")]
    Timeout,
    #[error("cannot reach the embeddings server: {0}")]
    Transport(String),
    #[error("the embeddings server answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("the embeddings server's answer is unusable: {0}")]
    BadBody(String),
}

/// The most of a section embedded, in characters: models read a few
/// hundred tokens well, and a runaway page must not make a call fail.
const INPUT_CHARS: usize = 2000;

/// The `/embeddings` endpoint of one server and model.
pub struct Embedder {
    http: reqwest::Client,
    endpoint: Url,
    api_key: Option<SecretString>,
    model: String,
    timeout: Duration,
    batch: usize,
    /// Vectors by the hash of (model, input): a refresh re-embeds only the
    /// sections whose text changed.
    cache: Mutex<HashMap<[u8; 32], Vector>>,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder")
            .field("endpoint", &crate::util::redact_url(self.endpoint.as_str()))
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}

/// A vector of unit length (cosine similarity is a dot product).
pub type Vector = std::sync::Arc<[f32]>;

#[derive(Deserialize)]
struct Body {
    data: Vec<Item>,
}

#[derive(Deserialize)]
struct Item {
    #[serde(default)]
    index: Option<usize>,
    embedding: Vec<f32>,
}

impl Embedder {
    pub fn new(config: &EmbeddingsConfig) -> Result<Embedder, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("paver/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Embedder {
            http,
            endpoint: crate::nlu::llm::client::under(&config.base_url, "embeddings"),
            api_key: config
                .api_key_env
                .as_ref()
                .and_then(|var| std::env::var(var).ok())
                .filter(|k| !k.is_empty())
                .map(SecretString::from),
            model: config.model.clone(),
            timeout: Duration::from_secs_f64(config.timeout_secs),
            batch: config.batch.max(1),
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// One line for logs (no key).
    pub fn describe(&self) -> String {
        format!(
            "model {} at {}",
            self.model,
            crate::util::redact_url(self.endpoint.as_str())
        )
    }

    fn key(&self, input: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.model.as_bytes());
        h.update([0]);
        h.update(input.as_bytes());
        h.finalize().into()
    }

    /// One vector per input, in order: from the cache where the same text
    /// was embedded before, the rest in batches. The cache keeps only what
    /// this call returned, so it holds one snapshot's sections, not every
    /// version ever seen.
    pub async fn embed_all(&self, inputs: &[String]) -> Result<Vec<Vector>, EmbedError> {
        let keys: Vec<[u8; 32]> = inputs.iter().map(|i| self.key(i)).collect();
        let mut out: Vec<Option<Vector>> = {
            let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            keys.iter().map(|k| cache.get(k).cloned()).collect()
        };
        let todo: Vec<usize> = (0..inputs.len()).filter(|&i| out[i].is_none()).collect();
        for chunk in todo.chunks(self.batch) {
            let batch: Vec<&str> = chunk.iter().map(|&i| inputs[i].as_str()).collect();
            let vectors = self.call(&batch).await?;
            for (&i, v) in chunk.iter().zip(vectors) {
                out[i] = Some(v);
            }
        }
        let out: Vec<Vector> = out.into_iter().map(|v| v.expect("filled")).collect();
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.clear();
        for (k, v) in keys.into_iter().zip(&out) {
            cache.insert(k, v.clone());
        }
        Ok(out)
    }

    /// The question's vector (never cached: questions rarely repeat word
    /// for word).
    pub async fn embed_one(&self, input: &str) -> Result<Vector, EmbedError> {
        let mut v = self.call(&[input]).await?;
        v.pop()
            .ok_or_else(|| EmbedError::BadBody("no vector".into()))
    }

    async fn call(&self, inputs: &[&str]) -> Result<Vec<Vector>, EmbedError> {
        let inputs: Vec<String> = inputs
            .iter()
            .map(|i| i.chars().take(INPUT_CHARS).collect())
            .collect();
        let body = serde_json::json!({"model": self.model, "input": inputs});
        let mut rb = self
            .http
            .post(self.endpoint.clone())
            .timeout(self.timeout)
            .json(&body);
        if let Some(key) = &self.api_key {
            rb = rb.bearer_auth(key.expose_secret());
        }
        let transport = |e: reqwest::Error| {
            if e.is_timeout() {
                EmbedError::Timeout
            } else {
                // The URL may hold a key in its query: never in the error.
                EmbedError::Transport(e.without_url().to_string())
            }
        };
        let resp = rb.send().await.map_err(transport)?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(transport)?;
        if !status.is_success() {
            return Err(EmbedError::Status {
                status: status.as_u16(),
                body: String::from_utf8_lossy(&bytes).chars().take(300).collect(),
            });
        }
        parse(&bytes, inputs.len())
    }
}

/// The vectors of an `/embeddings` answer for `n` inputs, in input order
/// and of unit length; anything else (a missing or repeated index, vectors
/// of different sizes, NaN, all zeros) is refused whole.
fn parse(bytes: &[u8], n: usize) -> Result<Vec<Vector>, EmbedError> {
    let body: Body =
        serde_json::from_slice(bytes).map_err(|e| EmbedError::BadBody(e.to_string()))?;
    if body.data.len() != n {
        return Err(EmbedError::BadBody(format!(
            "{} vectors for {n} inputs",
            body.data.len()
        )));
    }
    let mut slots: Vec<Option<Vector>> = vec![None; n];
    let mut dims = None;
    for (pos, item) in body.data.into_iter().enumerate() {
        let i = item.index.unwrap_or(pos);
        if i >= n || slots[i].is_some() {
            return Err(EmbedError::BadBody(format!("index {i} out of place")));
        }
        if item.embedding.is_empty()
            || *dims.get_or_insert(item.embedding.len()) != item.embedding.len()
        {
            return Err(EmbedError::BadBody("vectors of different sizes".into()));
        }
        slots[i] = Some(unit(item.embedding)?);
    }
    Ok(slots
        .into_iter()
        .map(|v| v.expect("every index seen"))
        .collect())
}

fn unit(mut v: Vec<f32>) -> Result<Vector, EmbedError> {
    if v.iter().any(|x| !x.is_finite()) {
        return Err(EmbedError::BadBody("a vector holds NaN or infinity".into()));
    }
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm == 0.0 {
        return Err(EmbedError::BadBody("a vector of zeros".into()));
    }
    v.iter_mut().for_each(|x| *x /= norm);
    Ok(v.into())
}

/// Cosine similarity of two unit vectors (0 when their sizes differ: a
/// model changed between the docs and the question).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() {
        return 0.0;
    }
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_put_in_input_order_and_made_unit_length() {
        let body = br#"{"data":[{"index":1,"embedding":[0,2]},{"index":0,"embedding":[3,4]}]}"#;
        let v = parse(body, 2).unwrap();
        assert_eq!(&*v[0], &[0.6, 0.8]);
        assert_eq!(&*v[1], &[0.0, 1.0]);
    }

    #[test]
    fn unusable_answers_are_refused_whole() {
        for (body, n) in [
            (&br#"{"data":[{"embedding":[1,0]}]}"#[..], 2),
            (
                br#"{"data":[{"index":0,"embedding":[1,0]},{"index":0,"embedding":[0,1]}]}"#,
                2,
            ),
            (
                br#"{"data":[{"index":0,"embedding":[1,0]},{"index":1,"embedding":[0,1,0]}]}"#,
                2,
            ),
            (br#"{"data":[{"embedding":[0,0]}]}"#, 1),
            (br#"{"data":[{"embedding":[]}]}"#, 1),
            (br#"{"error":"nope"}"#, 1),
            (b"<html>", 1),
        ] {
            assert!(
                matches!(parse(body, n), Err(EmbedError::BadBody(_))),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn cosine_of_different_models_is_zero() {
        assert_eq!(cosine(&[1.0, 0.0], &[1.0, 0.0, 0.0]), 0.0);
        assert!((cosine(&[0.6, 0.8], &[0.6, 0.8]) - 1.0).abs() < 1e-6);
    }
}
