//! Client for the Backstage catalog backend's entity query API.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;
use url::Url;

#[derive(Debug, thiserror::Error)]
pub enum BackstageError {
    #[error("Backstage request to {url} failed: {source}")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("Backstage answered {status} for {url}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("Backstage answered {url} with an unexpected body: {source}")]
    Decode {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("Backstage paging did not end after {0} pages")]
    TooManyPages(usize),
    #[error("Backstage answered {url} with more than {max} bytes; refused")]
    TooLarge { url: String, max: usize },
    #[error("Backstage answered {url} with a body that is not an entity page: {source}")]
    Json {
        url: String,
        #[source]
        source: serde_json::Error,
    },
}

/// The kinds Paver reads; the rest of the catalog is not fetched at all.
const KINDS: [&str; 5] = ["component", "group", "user", "template", "resource"];
const PAGE_SIZE: usize = 500;
/// 2,000 pages of 500 is a million entities: a loop that long is a bug
/// (a backend handing back the same cursor), not a catalog.
const MAX_PAGES: usize = 2_000;
/// The largest page read. A page holds up to 500 entities of a few KiB
/// each, so this is well above a real page and well below harm.
pub const MAX_PAGE_BYTES: usize = 16 * 1024 * 1024;
/// Connecting takes at most this long, whatever the request timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct QueryResponse {
    items: Vec<Value>,
    #[serde(default)]
    page_info: PageInfo,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct PageInfo {
    next_cursor: Option<String>,
}

/// `GET {base}/api/catalog/entities/by-query`, following `nextCursor`.
#[derive(Clone)]
pub struct BackstageClient {
    base: Url,
    token: Option<SecretString>,
    http: reqwest::Client,
}

impl BackstageClient {
    pub fn new(base: Url, token: Option<SecretString>, timeout: Duration) -> Self {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(CONNECT_TIMEOUT.min(timeout))
            .user_agent(concat!("paver/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("a reqwest client with only a timeout and user agent always builds");
        BackstageClient { base, token, http }
    }

    pub fn base_url(&self) -> &Url {
        &self.base
    }

    fn endpoint(&self) -> Url {
        let mut url = self.base.clone();
        let path = format!(
            "{}/api/catalog/entities/by-query",
            url.path().trim_end_matches('/')
        );
        url.set_path(&path);
        url
    }

    /// Every entity of the kinds Paver uses, each labelled with where it came from.
    pub async fn fetch_all(&self) -> Result<Vec<(String, Value)>, BackstageError> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut url = self.endpoint();
            {
                let mut q = url.query_pairs_mut();
                q.append_pair("limit", &PAGE_SIZE.to_string());
                match &cursor {
                    // The cursor carries the filter of the first request.
                    Some(c) => {
                        q.append_pair("cursor", c);
                    }
                    None => {
                        for k in KINDS {
                            q.append_pair("filter", &format!("kind={k}"));
                        }
                    }
                }
            }
            let page = self.get_page(url).await?;
            let origin = format!("backstage {}", self.base);
            out.extend(page.items.into_iter().map(|v| (origin.clone(), v)));
            match page.page_info.next_cursor {
                Some(next) if Some(&next) != cursor.as_ref() => cursor = Some(next),
                _ => return Ok(out),
            }
        }
        Err(BackstageError::TooManyPages(MAX_PAGES))
    }

    async fn get_page(&self, url: Url) -> Result<QueryResponse, BackstageError> {
        let shown = url.to_string();
        let mut req = self.http.get(url);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t.expose_secret());
        }
        let resp = req.send().await.map_err(|source| BackstageError::Http {
            url: shown.clone(),
            source,
        })?;
        let status = resp.status();
        let body = read_capped(resp, &shown, MAX_PAGE_BYTES).await?;
        if !status.is_success() {
            let body = crate::util::text::shorten(&String::from_utf8_lossy(&body));
            return Err(BackstageError::Status {
                url: shown,
                status: status.as_u16(),
                body,
            });
        }
        serde_json::from_slice::<QueryResponse>(&body)
            .map_err(|source| BackstageError::Json { url: shown, source })
    }
}

/// The body, read in chunks and refused as soon as it passes `max` bytes.
async fn read_capped(
    mut resp: reqwest::Response,
    url: &str,
    max: usize,
) -> Result<Vec<u8>, BackstageError> {
    let too_large = || BackstageError::TooLarge {
        url: url.to_owned(),
        max,
    };
    if resp.content_length().is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    let mut out = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|source| BackstageError::Decode {
            url: url.to_owned(),
            source,
        })?
    {
        if out.len() + chunk.len() > max {
            return Err(too_large());
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}
