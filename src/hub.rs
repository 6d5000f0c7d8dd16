//! Downloads from the Hugging Face Hub into the cache layout Python's `huggingface_hub` uses
//! (`models--org--name/{blobs,refs,snapshots}`), so either tool reuses the other's files.
//!
//! HTTP and the cache writes are hf-hub's (sync API). Written here, because hf-hub 0.5 lacks
//! them: the environment variables it does not read (HF_HUB_CACHE, HF_HUB_OFFLINE, HF_TOKEN,
//! XDG_CACHE_HOME), cache lookups by commit hash (hf-hub only reads `refs/`), offline mode,
//! `.no_exist` markers for optional files, and the choice of the files a model needs.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Component, Path, PathBuf};

use hf_hub::api::sync::{Api, ApiBuilder, ApiError};
use hf_hub::{Cache, Repo};

use crate::error::{invalid_input, Error, Result};
use crate::weights::shard_names;

const DEFAULT_ENDPOINT: &str = "https://huggingface.co";
const DEFAULT_REVISION: &str = "main";

/// Tokenizer files a model may have; those the repo lacks are skipped.
const TOKENIZER_FILES: [&str; 6] = [
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.json",
    "merges.txt",
    "sentencepiece.bpe.model",
];

/// How to reach the hub; unset fields come from the environment as in `huggingface_hub`.
#[derive(Debug, Clone)]
pub struct HubOptions {
    /// Branch, tag or 40-hex commit hash; `main` by default.
    pub revision: Option<String>,
    /// The hub cache directory; default HF_HUB_CACHE, else `$HF_HOME/hub`.
    pub cache_dir: Option<PathBuf>,
    /// Access token; default HF_TOKEN, else the file `$HF_HOME/token`.
    pub token: Option<String>,
    /// Use only the cache, as HF_HUB_OFFLINE=1 does.
    pub local_files_only: bool,
    /// Show a progress bar on stderr while downloading.
    pub progress: bool,
}

impl Default for HubOptions {
    fn default() -> Self {
        Self {
            revision: None,
            cache_dir: None,
            token: None,
            local_files_only: false,
            progress: true,
        }
    }
}

/// Downloads `filename` of the model repo `repo_id` (or finds it in the cache) and returns its
/// path inside `snapshots/<commit>/`.
pub fn download(repo_id: &str, filename: &str, opts: &HubOptions) -> Result<PathBuf> {
    let hub = Hub::new(opts, &env_var)?;
    hub.fetch(repo_id, &hub.revision, filename)
}

/// Downloads the files a model needs (config.json, its weights, and the generation config and
/// tokenizer files the repo has) and returns the snapshot directory, usable as a local model directory.
pub fn snapshot_for_model(repo_id: &str, opts: &HubOptions) -> Result<PathBuf> {
    let hub = Hub::new(opts, &env_var)?;
    let config = hub.fetch(repo_id, &hub.revision, "config.json")?;
    let snapshot = config
        .parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| Error::InvalidFile(format!("{} has no parent", config.display())))?;
    // Every other file comes from the same commit as config.json, even if the branch moves.
    let commit = snapshot
        .file_name()
        .and_then(|name| name.to_str())
        .map(str::to_owned)
        .ok_or_else(|| Error::InvalidFile(format!("bad snapshot path {}", snapshot.display())))?;
    hub.fetch_weights(repo_id, &commit)?;
    hub.fetch_optional(repo_id, &commit, "generation_config.json")?;
    for name in TOKENIZER_FILES {
        hub.fetch_optional(repo_id, &commit, name)?;
    }
    Ok(snapshot)
}

fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

/// Settings resolved from [`HubOptions`] and the environment, and the client built from them.
struct Hub {
    cache_dir: PathBuf,
    endpoint: String,
    revision: String,
    offline: bool,
    api: Api,
}

impl Hub {
    fn new(opts: &HubOptions, env: &dyn Fn(&str) -> Option<String>) -> Result<Self> {
        let cache_dir = match &opts.cache_dir {
            Some(dir) => dir.clone(),
            None => default_cache_dir(env)?,
        };
        let endpoint = endpoint(env)?;
        let token = opts
            .token
            .clone()
            .filter(|token| !token.is_empty())
            .or_else(|| token_from_env(env));
        let api = ApiBuilder::from_cache(Cache::new(cache_dir.clone()))
            .with_endpoint(endpoint.clone())
            .with_token(token)
            .with_progress(opts.progress)
            .build()
            .map_err(|e| Error::Network(format!("cannot create the hub client: {e}")))?;
        Ok(Self {
            cache_dir,
            endpoint,
            revision: opts
                .revision
                .clone()
                .unwrap_or_else(|| DEFAULT_REVISION.into()),
            offline: opts.local_files_only || env("HF_HUB_OFFLINE").is_some_and(|v| is_true(&v)),
            api,
        })
    }

    fn repo_dir(&self, repo_id: &str) -> PathBuf {
        self.cache_dir
            .join(Repo::model(repo_id.to_owned()).folder_name())
    }

    /// The file from the cache, else downloaded (unless offline).
    fn fetch(&self, repo_id: &str, revision: &str, filename: &str) -> Result<PathBuf> {
        check_repo_id(repo_id)?;
        check_relative_path("revision", revision)?;
        check_relative_path("file name", filename)?;
        if let Some(path) = cached_file(&self.repo_dir(repo_id), revision, filename) {
            return Ok(path);
        }
        if self.offline {
            return Err(Error::NotFound(format!(
                "{filename} of {repo_id} (revision {revision}) is not in the cache {} and \
                 downloads are disabled (HF_HUB_OFFLINE or local_files_only)",
                self.cache_dir.display()
            )));
        }
        self.download(repo_id, revision, filename)
    }

    fn download(&self, repo_id: &str, revision: &str, filename: &str) -> Result<PathBuf> {
        let repo = Repo::with_revision(
            repo_id.to_owned(),
            hf_hub::RepoType::Model,
            revision.to_owned(),
        );
        let api_repo = self.api.repo(repo);
        // hf-hub panics (`expect`, `assert!`) on some malformed server answers; a bad server
        // must give an error, not abort the caller.
        let result =
            catch_unwind(AssertUnwindSafe(|| api_repo.download(filename))).unwrap_or_else(|_| {
                Err(ApiError::IoError(std::io::Error::other(
                    "unexpected answer from the server",
                )))
            });
        result.map_err(|err| self.download_error(err, repo_id, revision, filename))
    }

    fn download_error(&self, err: ApiError, repo_id: &str, revision: &str, file: &str) -> Error {
        let what = format!(
            "{file} of {repo_id} (revision {revision}) from {}",
            self.endpoint
        );
        match http_status(&err) {
            Some(404) => Error::NotFound(format!("{what}: not found (404)")),
            Some(status @ (401 | 403)) => Error::Unauthorized(format!(
                "{what}: access denied ({status}); the repo may be private or gated: pass a \
                 valid token (token=... or HF_TOKEN) that has access to it"
            )),
            _ => Error::Network(format!("cannot download {what}: {err}")),
        }
    }

    /// The file, or `None` when the repo does not have it. A 404 is remembered in
    /// `.no_exist/<commit>/` (as `huggingface_hub` does) so the next call needs no request.
    fn fetch_optional(
        &self,
        repo_id: &str,
        commit: &str,
        filename: &str,
    ) -> Result<Option<PathBuf>> {
        let marker = self
            .repo_dir(repo_id)
            .join(".no_exist")
            .join(commit)
            .join(filename);
        if marker.exists() {
            return Ok(None);
        }
        match self.fetch(repo_id, commit, filename) {
            Ok(path) => Ok(Some(path)),
            Err(Error::NotFound(_)) if self.offline => Ok(None),
            Err(Error::NotFound(_)) => {
                remember_missing(&marker);
                Ok(None)
            }
            Err(err) => Err(err),
        }
    }

    /// `model.safetensors`, else the safetensors index and its shards, else `pytorch_model.bin`.
    fn fetch_weights(&self, repo_id: &str, commit: &str) -> Result<()> {
        if self
            .fetch_optional(repo_id, commit, "model.safetensors")?
            .is_some()
        {
            return Ok(());
        }
        if let Some(index) = self.fetch_optional(repo_id, commit, "model.safetensors.index.json")? {
            for shard in shard_names(&index)? {
                self.fetch(repo_id, commit, &shard)?;
            }
            return Ok(());
        }
        if self
            .fetch_optional(repo_id, commit, "pytorch_model.bin")?
            .is_some()
        {
            return Ok(());
        }
        let offline = if self.offline {
            " in the cache (downloads are disabled: HF_HUB_OFFLINE or local_files_only)"
        } else {
            ""
        };
        Err(Error::NotFound(format!(
            "{repo_id} (commit {commit}) has no model.safetensors, \
             model.safetensors.index.json or pytorch_model.bin{offline}"
        )))
    }
}

/// Records that a file is absent; failing to write the marker only costs a request next time.
fn remember_missing(marker: &Path) {
    if let Some(dir) = marker.parent() {
        let _ = std::fs::create_dir_all(dir).and_then(|()| std::fs::write(marker, b""));
    }
}

/// The status of an HTTP error answer, if the error is one.
fn http_status(err: &ApiError) -> Option<u16> {
    match err {
        ApiError::RequestError(inner) => match inner.as_ref() {
            ureq::Error::StatusCode(status) => Some(*status),
            _ => None,
        },
        _ => None,
    }
}

/// `snapshots/<commit>/<filename>` if cached. A commit hash is looked up directly; a branch or
/// tag through `refs/<revision>`.
fn cached_file(repo_dir: &Path, revision: &str, filename: &str) -> Option<PathBuf> {
    let commit = if is_commit_hash(revision) {
        revision.to_owned()
    } else {
        let text = std::fs::read_to_string(repo_dir.join("refs").join(revision)).ok()?;
        text.trim().to_owned()
    };
    let path = repo_dir.join("snapshots").join(commit).join(filename);
    path.exists().then_some(path)
}

fn is_commit_hash(revision: &str) -> bool {
    revision.len() == 40
        && revision
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// As `huggingface_hub`: HF_HUB_CACHE, else `$HF_HOME/hub`, where HF_HOME defaults to
/// `$XDG_CACHE_HOME/huggingface`, then `~/.cache/huggingface`.
fn default_cache_dir(env: &dyn Fn(&str) -> Option<String>) -> Result<PathBuf> {
    match env("HF_HUB_CACHE") {
        Some(dir) => Ok(PathBuf::from(dir)),
        None => Ok(hf_home(env)?.join("hub")),
    }
}

fn hf_home(env: &dyn Fn(&str) -> Option<String>) -> Result<PathBuf> {
    if let Some(home) = env("HF_HOME") {
        return Ok(PathBuf::from(home));
    }
    let cache = match env("XDG_CACHE_HOME") {
        Some(dir) => PathBuf::from(dir),
        None => std::env::home_dir()
            .ok_or_else(|| {
                Error::InvalidInput(
                    "no home directory to put the hub cache in; set HF_HOME or HF_HUB_CACHE".into(),
                )
            })?
            .join(".cache"),
    };
    Ok(cache.join("huggingface"))
}

/// HF_TOKEN, else the token file `huggingface-cli login` writes to `$HF_HOME/token`.
fn token_from_env(env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    env("HF_TOKEN")
        .or_else(|| {
            let text = std::fs::read_to_string(hf_home(env).ok()?.join("token")).ok()?;
            Some(text)
        })
        .map(|token| token.trim().to_owned())
        .filter(|token| !token.is_empty())
}

fn endpoint(env: &dyn Fn(&str) -> Option<String>) -> Result<String> {
    let endpoint = env("HF_ENDPOINT").unwrap_or_else(|| DEFAULT_ENDPOINT.into());
    if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
        return invalid_input!("HF_ENDPOINT must be an http:// or https:// URL, got {endpoint:?}");
    }
    Ok(endpoint.trim_end_matches('/').to_owned())
}

/// `huggingface_hub`'s truthy values for boolean environment variables.
fn is_true(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_uppercase().as_str(),
        "1" | "ON" | "YES" | "TRUE"
    )
}

/// `name` or `org/name` made of letters, digits, `-`, `_`, `.`, without `--` or `..` (as the
/// hub requires); anything else could also escape the cache directory.
fn check_repo_id(repo_id: &str) -> Result<()> {
    let parts: Vec<&str> = repo_id.split('/').collect();
    let valid_part = |part: &&str| {
        !part.is_empty()
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    if parts.len() <= 2
        && parts.iter().all(valid_part)
        && !repo_id.contains("--")
        && !repo_id.contains("..")
    {
        Ok(())
    } else {
        invalid_input!("invalid repo id {repo_id:?}: expected \"name\" or \"org/name\"")
    }
}

/// A file name (or a revision such as `refs/pr/1`, which names a file under `refs/`): a
/// relative path without `.` or `..` components.
fn check_relative_path(what: &str, value: &str) -> Result<()> {
    let stays_inside = !value.is_empty()
        && !value.contains('\\')
        && Path::new(value)
            .components()
            .all(|part| matches!(part, Component::Normal(_)));
    if stays_inside {
        Ok(())
    } else {
        invalid_input!("invalid {what} {value:?}: expected a relative path without . or ..")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn commit_hashes_are_40_lowercase_hex() {
        assert!(is_commit_hash("0123456789abcdef0123456789abcdef01234567"));
        assert!(!is_commit_hash("main"));
        assert!(!is_commit_hash("0123456789abcdef0123456789abcdef0123456"));
        assert!(!is_commit_hash("0123456789ABCDEF0123456789abcdef01234567"));
        assert!(!is_commit_hash("0123456789abcdef0123456789abcdef0123456g"));
    }

    #[test]
    fn hub_cache_takes_precedence_over_hf_home() {
        let both = env_of(&[("HF_HUB_CACHE", "/c"), ("HF_HOME", "/h")]);
        assert_eq!(default_cache_dir(&both).unwrap(), PathBuf::from("/c"));
        let home = env_of(&[("HF_HOME", "/h"), ("XDG_CACHE_HOME", "/x")]);
        assert_eq!(default_cache_dir(&home).unwrap(), PathBuf::from("/h/hub"));
        let xdg = env_of(&[("XDG_CACHE_HOME", "/x")]);
        assert_eq!(
            default_cache_dir(&xdg).unwrap(),
            PathBuf::from("/x/huggingface/hub")
        );
    }

    #[test]
    fn token_from_variable_then_file() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().to_str().unwrap();
        assert_eq!(token_from_env(&env_of(&[("HF_HOME", home)])), None);
        std::fs::write(dir.path().join("token"), "hf_file\n").unwrap();
        assert_eq!(
            token_from_env(&env_of(&[("HF_HOME", home)])).as_deref(),
            Some("hf_file")
        );
        let both = env_of(&[("HF_HOME", home), ("HF_TOKEN", "hf_var")]);
        assert_eq!(token_from_env(&both).as_deref(), Some("hf_var"));
    }

    #[test]
    fn endpoint_is_checked_and_trimmed() {
        assert_eq!(endpoint(&env_of(&[])).unwrap(), DEFAULT_ENDPOINT);
        let local = env_of(&[("HF_ENDPOINT", "http://127.0.0.1:5/")]);
        assert_eq!(endpoint(&local).unwrap(), "http://127.0.0.1:5");
        let bad = env_of(&[("HF_ENDPOINT", "127.0.0.1:5")]);
        assert!(matches!(endpoint(&bad), Err(Error::InvalidInput(_))));
    }

    #[test]
    fn offline_values() {
        for value in ["1", "true", "TRUE", "yes", "on"] {
            assert!(is_true(value), "{value}");
        }
        for value in ["0", "false", "", "no"] {
            assert!(!is_true(value), "{value}");
        }
    }

    #[test]
    fn repo_ids_and_file_names_stay_inside_the_cache() {
        for ok in [
            "gpt2",
            "org/name",
            "FacebookAI/xlm-roberta-base",
            "a.b_c-d/e",
        ] {
            assert!(check_repo_id(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a/b/c", "../x", "org/..", "a--b", "/abs", "org/", "a b"] {
            assert!(check_repo_id(bad).is_err(), "{bad}");
        }
        for ok in ["config.json", "onnx/model.onnx"] {
            assert!(check_relative_path("file", ok).is_ok(), "{ok}");
        }
        for bad in ["", "../x", "/etc/passwd", "a/../../b", "./x", "a\\b"] {
            assert!(check_relative_path("file", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cache_lookup_by_branch_and_by_commit() {
        let dir = tempfile::tempdir().unwrap();
        let commit = "0123456789abcdef0123456789abcdef01234567";
        let snapshot = dir.path().join("snapshots").join(commit);
        std::fs::create_dir_all(&snapshot).unwrap();
        std::fs::write(snapshot.join("config.json"), "{}").unwrap();
        assert_eq!(
            cached_file(dir.path(), commit, "config.json"),
            Some(snapshot.join("config.json"))
        );
        assert_eq!(cached_file(dir.path(), "main", "config.json"), None);
        std::fs::create_dir_all(dir.path().join("refs")).unwrap();
        std::fs::write(dir.path().join("refs/main"), commit).unwrap();
        assert_eq!(
            cached_file(dir.path(), "main", "config.json"),
            Some(snapshot.join("config.json"))
        );
        assert_eq!(cached_file(dir.path(), "main", "vocab.json"), None);
    }
}
