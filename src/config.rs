//! `etc/glance-api.conf`: INI in oslo.config style. Option names follow upstream Glance where
//! one exists; Glint's own options live in `[glint]`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ini::Ini;

#[derive(Clone, Debug)]
pub struct Config {
    pub data_dirs: Vec<PathBuf>,
    pub catalog_dir: PathBuf,
    /// `[database] connection` (upstream's option): a PostgreSQL catalog instead of the
    /// embedded RocksDB in `catalog_dir`.
    pub database_connection: Option<String>,
    /// `[glint] only_node`: with `[database] connection`, no other node shares the catalog,
    /// so start-up recovery may roll back interrupted image operations (which on a shared
    /// catalog may be other nodes' work in progress).
    pub only_node: bool,
    /// `[chunk_store]`: packs in an S3-compatible object store (cluster mode).
    pub chunk_store: Option<glint_storage::RemotePackConfig>,
    pub chunk_size: usize,
    /// Engine format for new writes (`[glint] store_format`), chunk codec and compaction
    /// threshold of format v2 (storage/README.md).
    pub store_format: glint_storage::Format,
    pub chunk_codec: glint_storage::Codec,
    pub compact_below: f64,
    /// Seconds after a delete before format v2 packs are compacted in the background
    /// (`[glint] compact_delay_secs`; 0: only `glint gc` compacts).
    pub compact_delay_secs: u64,
    pub glance_addr: SocketAddr,
    pub image_size_cap: u64,
    pub s3_addr: SocketAddr,
    /// `[glint] admin_bind_host` (default loopback) / `admin_bind_port`: the admin listener
    /// (`/metrics`); off unless a port is given.
    pub admin_addr: Option<SocketAddr>,
    /// `[DEFAULT] cert_file` / `key_file` (upstream's names): every listener speaks TLS
    /// with this certificate chain and key (PEM), reloaded on SIGHUP.
    pub tls: Option<TlsFiles>,
    /// `[glint] access_log`: one log line per request (target `access`). Default on.
    pub access_log: bool,
    /// `[glint] log_format`: `text` (default) or `json` (one JSON object per line).
    pub log_format: LogFormat,
    pub s3_domain: Option<String>,
    pub s3_region: String,
    pub s3_bootstrap: Option<(String, String, String)>,
    pub s3_max_put_size: u64,
    /// The read-only bucket through which S3 clients read Glance images (None: no view).
    pub s3_images_bucket: Option<String>,
    /// Timeouts and the connection cap of each listener (`conn.rs`).
    pub limits: crate::conn::Limits,
    /// How long a stop (SIGTERM, SIGINT) lets requests in flight finish (`shutdown_timeout`).
    pub drain_timeout: std::time::Duration,
    pub glance: GlanceOptions,
}

/// The certificate chain and key the listeners serve (`[DEFAULT] cert_file`, `key_file`).
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// Options that change what the Images API answers (upstream names and defaults).
#[derive(Clone, Debug)]
pub struct GlanceOptions {
    /// Page size when a list request names no `limit`.
    pub limit_param_default: usize,
    /// Largest page; bigger `limit`s are capped silently.
    pub api_limit_max: usize,
    pub image_member_quota: usize,
    pub image_property_quota: usize,
    pub image_tag_quota: usize,
    /// Bytes of image data one project may hold; 0 = unlimited.
    pub user_storage_quota: u64,
    pub disk_formats: Vec<String>,
    pub container_formats: Vec<String>,
    /// `[image_format] require_image_format_match`: data of a bare image must be what its
    /// `disk_format` says (upstream's default); off, a mismatch is accepted without a
    /// virtual size. Unsafe data (backing files, data files, VMDK extents) is refused
    /// either way.
    pub require_image_format_match: bool,
    pub enabled_import_methods: Vec<String>,
    /// Operator-defined image properties (`schema-image.json`), merged into the image schema.
    pub schema_file: Option<PathBuf>,
    pub import_filter: ImportFilter,
    /// Hours a finished task stays listed (`task_time_to_live`).
    pub task_time_to_live: u64,
    /// Deleting an image with data leaves it `pending_delete` for the scrubber.
    pub delayed_delete: bool,
    /// Seconds a pending image waits before the scrubber purges it.
    pub scrub_time: u64,
    /// Seconds between in-process scrubber passes (0: no in-process scrubber).
    pub scrubber_wakeup_time: u64,
    /// Rules over the default policy (`[oslo_policy] policy_file`).
    pub policy_file: Option<PathBuf>,
    /// The JSON-lines notification sink; None: notifications off.
    pub notifications_file: Option<PathBuf>,
    /// Multiple stores (`enabled_backends`): empty = one store (upstream's single-store
    /// mode). The default backend's data directories are the main store's.
    pub backends: Vec<BackendConfig>,
    /// `[cors]` (oslo.middleware): no allowed origin = no CORS headers.
    pub cors: CorsOptions,
    /// The algorithm of `os_hash_algo` / `os_hash_value` (`hashing_algorithm`).
    pub hashing_algorithm: HashAlgo,
    /// `[oslo_middleware] enable_proxy_headers_parsing`: trust X-Forwarded-Proto/-Host for
    /// the URLs the API writes (behind a TLS-terminating proxy).
    pub proxy_headers: bool,
    /// Keystone identity (`[paste_deploy] flavor = keystone`); None = noauth.
    pub keystone: Option<KeystoneOptions>,
    /// The `image_conversion` import plugin; None: imports keep the uploaded format.
    pub image_conversion: Option<ConversionOptions>,
}

/// `[image_conversion]`, enabled by `[image_import_opts] image_import_plugins`.
#[derive(Clone, Debug)]
pub struct ConversionOptions {
    /// `raw` or `qcow2` (upstream's `output_format`, default `raw`).
    pub output_format: String,
    /// Where source and converted images are kept while `qemu-img` runs (`[task] work_dir`;
    /// default `convert/` in the first data directory, on the data volume).
    pub work_dir: PathBuf,
}

/// `[cors]`, with oslo.middleware's option names and Glance's defaults.
#[derive(Clone, Debug)]
pub struct CorsOptions {
    pub allowed_origin: Vec<String>,
    pub allow_credentials: bool,
    pub expose_headers: Vec<String>,
    pub max_age: Option<u64>,
    pub allow_methods: Vec<String>,
}

/// One of `enabled_backends` (`id:file`) and its section.
#[derive(Clone, Debug)]
pub struct BackendConfig {
    pub id: String,
    pub description: String,
    pub data_dirs: Vec<PathBuf>,
    pub default: bool,
}

/// `[keystone_authtoken]`, with keystonemiddleware's option names.
#[derive(Clone, Debug)]
pub struct KeystoneOptions {
    /// Where unauthenticated clients are sent (the `WWW-Authenticate` header).
    pub www_authenticate_uri: String,
    /// Keystone's URL for validating tokens (without `/v3`).
    pub auth_url: String,
    pub username: String,
    pub password: String,
    pub project_name: String,
    pub user_domain_id: Option<String>,
    pub user_domain_name: Option<String>,
    pub project_domain_id: Option<String>,
    pub project_domain_name: Option<String>,
    /// Seconds a validated token is trusted without asking Keystone again.
    pub token_cache_time: u64,
    pub http_connect_timeout: u64,
}

/// `[import_filtering_opts]`: which URIs web-download and legacy import tasks may fetch.
/// A non-empty allow list wins over its deny list, as upstream.
#[derive(Clone, Debug)]
pub struct ImportFilter {
    pub allowed_schemes: Vec<String>,
    pub disallowed_schemes: Vec<String>,
    pub allowed_hosts: Vec<String>,
    pub disallowed_hosts: Vec<String>,
    pub allowed_ports: Vec<u16>,
    pub disallowed_ports: Vec<u16>,
}

/// The image multihash algorithm (`[DEFAULT] hashing_algorithm`). Upstream accepts any of
/// Python's hashlib names; Glint computes the ones its engine hashes in the same pass as the
/// upload, and refuses others at start rather than failing each upload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashAlgo {
    Sha512,
    Sha256,
    Sha1,
    Md5,
}

impl HashAlgo {
    /// The name upstream writes in `os_hash_algo` (hashlib's).
    pub fn name(self) -> &'static str {
        match self {
            HashAlgo::Sha512 => "sha512",
            HashAlgo::Sha256 => "sha256",
            HashAlgo::Sha1 => "sha1",
            HashAlgo::Md5 => "md5",
        }
    }
}

impl std::str::FromStr for HashAlgo {
    type Err = String;
    fn from_str(s: &str) -> Result<HashAlgo, String> {
        match s.to_ascii_lowercase().as_str() {
            "sha512" => Ok(HashAlgo::Sha512),
            "sha256" => Ok(HashAlgo::Sha256),
            "sha1" => Ok(HashAlgo::Sha1),
            "md5" => Ok(HashAlgo::Md5),
            other => Err(format!(
                "{other:?} is not supported (Glint computes sha512, sha256, sha1 or md5)"
            )),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: ini::Error },
    #[error("[{section}] {key}: {reason}")]
    Invalid {
        section: &'static str,
        key: &'static str,
        reason: String,
    },
}

struct Reader(Ini);

impl Reader {
    /// A listen address from a host and a port option (IPv6 hosts without brackets too).
    fn addr(
        &self,
        section: &'static str,
        host_key: &'static str,
        port_key: &'static str,
        port: u16,
    ) -> Result<SocketAddr, ConfigError> {
        self.addr_on(section, host_key, "0.0.0.0", port_key, port)
    }

    fn addr_on(
        &self,
        section: &'static str,
        host_key: &'static str,
        host: &str,
        port_key: &'static str,
        port: u16,
    ) -> Result<SocketAddr, ConfigError> {
        let h: String = self.parse(section, host_key, host.to_string())?;
        let p: u16 = self.parse(section, port_key, port)?;
        format!("{h}:{p}")
            .parse()
            .or_else(|_| format!("[{h}]:{p}").parse())
            .map_err(|e: std::net::AddrParseError| ConfigError::Invalid {
                section,
                key: host_key,
                reason: e.to_string(),
            })
    }

    /// An oslo.config boolean: true/false, yes/no, on/off, 1/0, any case.
    fn flag(
        &self,
        section: &'static str,
        key: &'static str,
        default: bool,
    ) -> Result<bool, ConfigError> {
        match self.get(section, key).map(|v| v.to_ascii_lowercase()) {
            None => Ok(default),
            Some(v) if ["true", "yes", "on", "1"].contains(&v.as_str()) => Ok(true),
            Some(v) if ["false", "no", "off", "0"].contains(&v.as_str()) => Ok(false),
            Some(v) => Err(ConfigError::Invalid {
                section,
                key,
                reason: format!("{v:?} is not a boolean"),
            }),
        }
    }

    fn get(&self, section: &'static str, key: &'static str) -> Option<String> {
        // oslo.config's [DEFAULT] is an ordinary section to rust-ini; keys before any
        // section header count as DEFAULT too.
        let found = if section == "DEFAULT" {
            self.0
                .section(Some("DEFAULT"))
                .and_then(|s| s.get(key))
                .or_else(|| self.0.section(None::<String>).and_then(|s| s.get(key)))
        } else {
            self.0.section(Some(section)).and_then(|s| s.get(key))
        };
        found
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    fn parse<T: std::str::FromStr>(
        &self,
        section: &'static str,
        key: &'static str,
        default: T,
    ) -> Result<T, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        match self.get(section, key) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|e: T::Err| ConfigError::Invalid {
                section,
                key,
                reason: e.to_string(),
            }),
        }
    }
}

/// `glance-scrubber.conf`'s `[DEFAULT] scrub_time` and `wakeup_time` (seconds), defaulting
/// to what `cfg` says.
pub fn scrubber_times(path: &Path, cfg: &Config) -> Result<(u64, u64), ConfigError> {
    let ini = Ini::load_from_file(path).map_err(|source| ConfigError::Read {
        path: path.into(),
        source,
    })?;
    let r = Reader(ini);
    Ok((
        r.parse("DEFAULT", "scrub_time", cfg.glance.scrub_time)?,
        r.parse("DEFAULT", "wakeup_time", cfg.glance.scrubber_wakeup_time)?,
    ))
}

/// `[database] connection`: upstream writes SQLAlchemy URLs (`postgresql+psycopg2://…`);
/// the driver part is dropped. Only PostgreSQL is a catalog Glint can use.
fn database_connection(value: Option<String>) -> Result<Option<String>, ConfigError> {
    let Some(v) = value
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
    else {
        return Ok(None);
    };
    let (scheme, rest) = v.split_once("://").unwrap_or(("", ""));
    let dialect = scheme.split('+').next().unwrap_or_default();
    if dialect != "postgresql" && dialect != "postgres" {
        return Err(ConfigError::Invalid {
            section: "database",
            key: "connection",
            reason: format!(
                "{scheme:?} is not a catalog Glint can use: give postgresql://user:password@host:port/database"
            ),
        });
    }
    Ok(Some(format!("postgresql://{rest}")))
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// `[chunk_store] local_cache_size` by default: bytes of pack copies a node keeps locally.
const DEFAULT_LOCAL_CACHE: u64 = 16 << 30;

/// `[chunk_store]` (endpoint, bucket, region, access_key, secret_key, prefix,
/// local_cache_size): where packs go in cluster mode. Absent: packs stay on the local data
/// directories.
fn chunk_store(r: &Reader) -> Result<Option<glint_storage::RemotePackConfig>, ConfigError> {
    let Some(endpoint) = r.get("chunk_store", "endpoint") else {
        return Ok(None);
    };
    let need = |key: &'static str| {
        r.get("chunk_store", key).ok_or(ConfigError::Invalid {
            section: "chunk_store",
            key,
            reason: "required with an endpoint".into(),
        })
    };
    if !endpoint.starts_with("http://") && !endpoint.starts_with("https://") {
        return Err(ConfigError::Invalid {
            section: "chunk_store",
            key: "endpoint",
            reason: format!("{endpoint:?} is not an http(s) URL"),
        });
    }
    Ok(Some(glint_storage::RemotePackConfig {
        endpoint,
        bucket: need("bucket")?,
        region: r
            .get("chunk_store", "region")
            .unwrap_or_else(|| "us-east-1".into()),
        access_key: need("access_key")?,
        secret_key: need("secret_key")?,
        prefix: r
            .get("chunk_store", "prefix")
            .unwrap_or_else(|| "packs".into()),
        local_cache_bytes: match r.parse("chunk_store", "local_cache_size", DEFAULT_LOCAL_CACHE)? {
            0 => None,
            n => Some(n),
        },
    }))
}

/// A comma-separated option (oslo's ListOpt; `[a, b]` brackets allowed).
fn list(value: Option<String>, default: &str) -> Vec<String> {
    value
        .as_deref()
        .unwrap_or(default)
        .trim_matches(|c| c == '[' || c == ']')
        .split(',')
        .map(|s| s.trim().trim_matches(|c| c == '\'' || c == '"').to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

fn backends(r: &Reader) -> Result<Vec<BackendConfig>, ConfigError> {
    let Some(enabled) = r.get("DEFAULT", "enabled_backends") else {
        return Ok(Vec::new());
    };
    let invalid = |key: &'static str, reason: String| ConfigError::Invalid {
        section: "DEFAULT",
        key,
        reason,
    };
    let default = r.get("glance_store", "default_backend");
    let mut out = Vec::new();
    for item in list(Some(enabled), "") {
        let (id, kind) = item.split_once(':').unwrap_or((item.as_str(), "file"));
        let (id, kind) = (id.trim().to_string(), kind.trim());
        if kind != "file" {
            return Err(invalid(
                "enabled_backends",
                format!("backend {id}: only the local engine (\"file\") is available"),
            ));
        }
        let section = r.0.section(Some(id.as_str()));
        let get = |k: &str| section.and_then(|s| s.get(k)).map(|v| v.trim().to_string());
        let data_dirs: Vec<PathBuf> = get("filesystem_store_datadirs")
            .or_else(|| get("filesystem_store_datadir"))
            .unwrap_or_default()
            .split(',')
            .map(|s| PathBuf::from(s.trim().split(':').next().unwrap_or_default()))
            .filter(|p| !p.as_os_str().is_empty())
            .collect();
        out.push(BackendConfig {
            description: get("store_description").unwrap_or_default(),
            default: default.as_deref() == Some(id.as_str()),
            id,
            data_dirs,
        });
    }
    match out.iter().filter(|b| b.default).count() {
        1 => Ok(out),
        _ => Err(ConfigError::Invalid {
            section: "glance_store",
            key: "default_backend",
            reason: "must name one of enabled_backends".into(),
        }),
    }
}

fn keystone_options(r: &Reader) -> Result<Option<KeystoneOptions>, ConfigError> {
    let flavor = r.get("paste_deploy", "flavor").unwrap_or_default();
    if !flavor.starts_with("keystone") {
        return Ok(None);
    }
    let need = |key: &'static str| {
        r.get("keystone_authtoken", key)
            .ok_or(ConfigError::Invalid {
                section: "keystone_authtoken",
                key,
                reason: "required with [paste_deploy] flavor = keystone".into(),
            })
    };
    let strip_v3 = |u: String| u.trim_end_matches('/').trim_end_matches("/v3").to_string();
    let auth_url = strip_v3(need("auth_url")?);
    Ok(Some(KeystoneOptions {
        www_authenticate_uri: r
            .get("keystone_authtoken", "www_authenticate_uri")
            .unwrap_or_else(|| auth_url.clone()),
        auth_url,
        username: need("username")?,
        password: need("password")?,
        project_name: need("project_name")?,
        user_domain_id: r.get("keystone_authtoken", "user_domain_id"),
        user_domain_name: r.get("keystone_authtoken", "user_domain_name"),
        project_domain_id: r.get("keystone_authtoken", "project_domain_id"),
        project_domain_name: r.get("keystone_authtoken", "project_domain_name"),
        token_cache_time: r.parse("keystone_authtoken", "token_cache_time", 300)?,
        http_connect_timeout: r.parse("keystone_authtoken", "http_connect_timeout", 10)?,
    }))
}

fn ports(r: &Reader, key: &'static str, default: &str) -> Result<Vec<u16>, ConfigError> {
    list(r.get("import_filtering_opts", key), default)
        .iter()
        .map(|p| {
            p.parse()
                .map_err(|e: std::num::ParseIntError| ConfigError::Invalid {
                    section: "import_filtering_opts",
                    key,
                    reason: e.to_string(),
                })
        })
        .collect()
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let ini = Ini::load_from_file(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        Self::from_ini(ini)
    }

    /// The built-in defaults: the embedded store under `./var`.
    pub fn defaults() -> Config {
        Self::from_ini(Ini::new()).expect("defaults are valid")
    }

    fn from_ini(ini: Ini) -> Result<Config, ConfigError> {
        let r = Reader(ini);
        let data_dirs: Vec<PathBuf> = r
            .get("glance_store", "filesystem_store_datadirs")
            .unwrap_or_else(|| "var/data".into())
            .split(',')
            .map(|s| PathBuf::from(s.trim().split(':').next().unwrap_or_default()))
            .filter(|p| !p.as_os_str().is_empty())
            .collect();
        let access = std::env::var("GLINT_S3_ACCESS_KEY")
            .ok()
            .or_else(|| r.get("glint", "s3_access_key"));
        let secret = std::env::var("GLINT_S3_SECRET_KEY")
            .ok()
            .or_else(|| r.get("glint", "s3_secret_key"));
        let project = r
            .get("glint", "s3_bootstrap_project")
            .unwrap_or_else(|| "admin".into());
        Ok(Config {
            catalog_dir: r.parse("glint", "catalog_dir", PathBuf::from("var/catalog"))?,
            database_connection: database_connection(r.get("database", "connection"))?,
            chunk_store: chunk_store(&r)?,
            only_node: r.flag("glint", "only_node", false)?,
            chunk_size: r.parse("glint", "chunk_size", glint_storage::DEFAULT_CHUNK_SIZE)?,
            store_format: r.parse("glint", "store_format", glint_storage::Format::V2)?,
            chunk_codec: r.parse("glint", "chunk_codec", glint_storage::Codec::Lz4)?,
            compact_below: r.parse("glint", "compact_below", 0.5)?,
            compact_delay_secs: r.parse("glint", "compact_delay_secs", 60)?,
            glance_addr: r.addr("DEFAULT", "bind_host", "bind_port", 9292)?,
            image_size_cap: r.parse("DEFAULT", "image_size_cap", 1u64 << 40)?,
            s3_addr: r.addr("glint", "s3_bind_host", "s3_bind_port", 8080)?,
            tls: tls_files(&r)?,
            access_log: r.flag("glint", "access_log", true)?,
            log_format: match r.get("glint", "log_format").as_deref() {
                None | Some("text") => LogFormat::Text,
                Some("json") => LogFormat::Json,
                Some(other) => {
                    return Err(ConfigError::Invalid {
                        section: "glint",
                        key: "log_format",
                        reason: format!("{other:?} is neither text nor json"),
                    })
                }
            },
            admin_addr: match r.get("glint", "admin_bind_port") {
                None => None,
                Some(_) => Some(r.addr_on(
                    "glint",
                    "admin_bind_host",
                    "127.0.0.1",
                    "admin_bind_port",
                    0,
                )?),
            },
            s3_domain: r.get("glint", "s3_domain"),
            s3_region: r
                .get("glint", "s3_region")
                .unwrap_or_else(|| "us-east-1".into()),
            s3_bootstrap: access.zip(secret).map(|(a, s)| (a, s, project)),
            s3_max_put_size: r.parse("glint", "s3_max_put_size", 5u64 << 30)?,
            s3_images_bucket: match r
                .0
                .section(Some("glint"))
                .and_then(|s| s.get("s3_images_bucket"))
            {
                Some(v) if v.trim().is_empty() => None,
                Some(v) => Some(v.trim().to_string()),
                None => Some("images".into()),
            },
            limits: connection_limits(&r)?,
            drain_timeout: std::time::Duration::from_secs(r.parse(
                "glint",
                "shutdown_timeout",
                30,
            )?),
            glance: glance_options(&r, &data_dirs)?,
            data_dirs,
        })
    }
}

/// `cert_file` and `key_file` go together; `ca_file` (upstream: verify client certificates)
/// is not implemented and refused rather than ignored.
fn tls_files(r: &Reader) -> Result<Option<TlsFiles>, ConfigError> {
    if r.get("DEFAULT", "ca_file").is_some() {
        return Err(ConfigError::Invalid {
            section: "DEFAULT",
            key: "ca_file",
            reason: "client certificate verification is not implemented; remove ca_file".into(),
        });
    }
    match (r.get("DEFAULT", "cert_file"), r.get("DEFAULT", "key_file")) {
        (None, None) => Ok(None),
        (Some(c), Some(k)) => Ok(Some(TlsFiles {
            cert_file: c.into(),
            key_file: k.into(),
        })),
        (c, _) => Err(ConfigError::Invalid {
            section: "DEFAULT",
            key: if c.is_some() { "key_file" } else { "cert_file" },
            reason: "cert_file and key_file must both be set (or neither)".into(),
        }),
    }
}

/// The connection limits of both listeners (`conn.rs`).
fn connection_limits(r: &Reader) -> Result<crate::conn::Limits, ConfigError> {
    let secs = |section, key, default: u64| -> Result<std::time::Duration, ConfigError> {
        let s: u64 = r.parse(section, key, default)?;
        if s == 0 {
            return Err(ConfigError::Invalid {
                section,
                key,
                reason: "must be at least 1 second".into(),
            });
        }
        Ok(std::time::Duration::from_secs(s))
    };
    let d = crate::conn::Limits::default();
    Ok(crate::conn::Limits {
        header_timeout: secs("glint", "client_header_timeout", d.header_timeout.as_secs())?,
        keepalive_timeout: secs("glint", "keepalive_timeout", d.keepalive_timeout.as_secs())?,
        socket_timeout: secs(
            "DEFAULT",
            "client_socket_timeout",
            d.socket_timeout.as_secs(),
        )?,
        max_connections: r
            .parse("glint", "max_connections", d.max_connections)?
            .max(1),
        keepalive: r.flag("DEFAULT", "http_keepalive", true)?,
    })
}

/// What changes the Images API's answers (upstream's names and defaults).
fn glance_options(r: &Reader, data_dirs: &[PathBuf]) -> Result<GlanceOptions, ConfigError> {
    Ok(GlanceOptions {
        image_conversion: image_conversion(r, data_dirs)?,
        limit_param_default: r.parse("DEFAULT", "limit_param_default", 25)?,
        api_limit_max: r.parse("DEFAULT", "api_limit_max", 1000)?,
        image_member_quota: r.parse("DEFAULT", "image_member_quota", 128)?,
        image_property_quota: r.parse("DEFAULT", "image_property_quota", 128)?,
        image_tag_quota: r.parse("DEFAULT", "image_tag_quota", 128)?,
        user_storage_quota: r.parse("DEFAULT", "user_storage_quota", 0)?,
        disk_formats: list(
            r.get("image_format", "disk_formats"),
            "ami,ari,aki,vhd,vhdx,vmdk,raw,qcow2,vdi,iso,ploop",
        ),
        container_formats: list(
            r.get("image_format", "container_formats"),
            "ami,ari,aki,bare,ovf,ova,docker,compressed",
        ),
        require_image_format_match: r.flag("image_format", "require_image_format_match", true)?,
        enabled_import_methods: list(
            r.get("DEFAULT", "enabled_import_methods"),
            "glance-direct,web-download,copy-image,glint-s3-object",
        ),
        schema_file: r.get("glint", "image_schema_file").map(PathBuf::from),
        import_filter: import_filter(r)?,
        task_time_to_live: r.parse("task", "task_time_to_live", 48)?,
        delayed_delete: r.flag("DEFAULT", "delayed_delete", false)?,
        scrub_time: r.parse("DEFAULT", "scrub_time", 0)?,
        scrubber_wakeup_time: r.parse("glint", "scrubber_wakeup_time", 300)?,
        policy_file: r
            .get("oslo_policy", "policy_file")
            .map(PathBuf::from)
            .filter(|p| {
                let found = p.exists();
                if !found {
                    tracing::warn!(path = %p.display(), "policy file not found: default rules apply");
                }
                found
            }),
        notifications_file: match r.get("oslo_messaging_notifications", "driver") {
            Some(d) if d == "noop" => None,
            _ => r
                .get("oslo_messaging_notifications", "jsonl_file")
                .map(PathBuf::from),
        },
        backends: backends(r)?,
        hashing_algorithm: r.parse("DEFAULT", "hashing_algorithm", HashAlgo::Sha512)?,
        cors: cors_options(r)?,
        proxy_headers: r.flag("oslo_middleware", "enable_proxy_headers_parsing", false)?,
        keystone: keystone_options(r)?,
    })
}

/// `[image_import_opts] image_import_plugins` and `[image_conversion]`. Plugins Glint does
/// not implement are refused at start, not ignored.
fn image_conversion(
    r: &Reader,
    data_dirs: &[PathBuf],
) -> Result<Option<ConversionOptions>, ConfigError> {
    let plugins = list(r.get("image_import_opts", "image_import_plugins"), "");
    let mut enabled = false;
    for p in plugins {
        match p.as_str() {
            "image_conversion" => enabled = true,
            "no_op" => {}
            other => {
                return Err(ConfigError::Invalid {
                    section: "image_import_opts",
                    key: "image_import_plugins",
                    reason: format!(
                        "plugin {other:?} is not implemented (available: image_conversion, no_op)"
                    ),
                })
            }
        }
    }
    let output_format = r
        .get("image_conversion", "output_format")
        .unwrap_or_else(|| "raw".into());
    if !matches!(output_format.as_str(), "raw" | "qcow2") {
        return Err(ConfigError::Invalid {
            section: "image_conversion",
            key: "output_format",
            reason: format!("{output_format:?} is not raw or qcow2"),
        });
    }
    let work_dir = match r.get("task", "work_dir") {
        Some(d) => PathBuf::from(d),
        None => data_dirs
            .first()
            .map(|d| d.join("convert"))
            .unwrap_or_else(std::env::temp_dir),
    };
    Ok(enabled.then_some(ConversionOptions {
        output_format,
        work_dir,
    }))
}

/// `[import_filtering_opts]`.
fn import_filter(r: &Reader) -> Result<ImportFilter, ConfigError> {
    Ok(ImportFilter {
        allowed_schemes: list(
            r.get("import_filtering_opts", "allowed_schemes"),
            "http,https",
        ),
        disallowed_schemes: list(r.get("import_filtering_opts", "disallowed_schemes"), ""),
        allowed_hosts: list(r.get("import_filtering_opts", "allowed_hosts"), ""),
        disallowed_hosts: list(r.get("import_filtering_opts", "disallowed_hosts"), ""),
        allowed_ports: ports(r, "allowed_ports", "80,443")?,
        disallowed_ports: ports(r, "disallowed_ports", "")?,
    })
}

/// `[cors]`, with oslo.middleware's defaults.
fn cors_options(r: &Reader) -> Result<CorsOptions, ConfigError> {
    Ok(CorsOptions {
        allowed_origin: list(r.get("cors", "allowed_origin"), ""),
        allow_credentials: r.flag("cors", "allow_credentials", true)?,
        expose_headers: list(
            r.get("cors", "expose_headers"),
            "Content-MD5,X-Image-Meta-Checksum,X-Storage-Token,Accept-Encoding,X-Openstack-Request-Id",
        ),
        max_age: match r.get("cors", "max_age") {
            None => Some(3600),
            Some(_) => Some(r.parse("cors", "max_age", 3600)?),
        },
        allow_methods: list(r.get("cors", "allow_methods"), "GET,PUT,POST,DELETE,PATCH"),
    })
}

impl Config {
    pub fn store_config(&self) -> glint_storage::StoreConfig {
        let dirs = self
            .glance
            .backends
            .iter()
            .find(|b| b.default && !b.data_dirs.is_empty())
            .map_or_else(|| self.data_dirs.clone(), |b| b.data_dirs.clone());
        let mut c = glint_storage::StoreConfig::new(dirs, self.catalog_dir.clone());
        self.apply_engine_options(&mut c);
        c
    }

    /// The engine options every store (the default one and each backend's) takes from the
    /// `[glint]` section.
    pub fn apply_engine_options(&self, c: &mut glint_storage::StoreConfig) {
        c.catalog_url = self.database_connection.clone();
        c.pack_store = self.chunk_store.clone();
        c.chunk_size = self.chunk_size;
        c.format = self.store_format;
        c.codec = self.chunk_codec;
        c.compact_below = self.compact_below;
        c.compact_delay = (self.compact_delay_secs > 0)
            .then(|| std::time::Duration::from_secs(self.compact_delay_secs));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_shipped_config() {
        let c = Config::load(Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/etc/glance-api.conf"
        )))
        .unwrap();
        assert_eq!(c.s3_addr.port(), 8080);
        assert_eq!(c.glance_addr.port(), 9292);
        assert_eq!(c.data_dirs, vec![PathBuf::from("var/data")]);
        assert_eq!(c.s3_domain.as_deref(), Some("s3.localhost"));
    }

    #[test]
    fn bad_values_name_their_option() {
        let ini = Ini::load_from_str("[glint]\ns3_bind_port = eighty\n").unwrap();
        assert!(Config::from_ini(ini)
            .unwrap_err()
            .to_string()
            .contains("s3_bind_port"));
        let ini = Ini::load_from_str("[DEFAULT]\nbind_port = 19292\nimage_size_cap = 7\n").unwrap();
        let c = Config::from_ini(ini).unwrap();
        assert_eq!((c.glance_addr.port(), c.image_size_cap), (19292, 7));
        let ini = Ini::load_from_str("[glint]\ns3_bind_port = eighty\n").unwrap();
        let e = Config::from_ini(ini).unwrap_err().to_string();
        assert!(e.contains("s3_bind_port"), "{e}");
    }

    #[test]
    fn engine_format_options() {
        let load = |text: &str| Config::from_ini(Ini::load_from_str(text).unwrap());
        let c = load("").unwrap();
        assert_eq!(
            (c.store_format, c.chunk_codec, c.compact_below),
            (glint_storage::Format::V2, glint_storage::Codec::Lz4, 0.5)
        );
        let c =
            load("[glint]\nstore_format = v1\nchunk_codec = none\ncompact_below = 0.3\n").unwrap();
        let sc = c.store_config();
        assert_eq!(
            (sc.format, sc.codec, sc.compact_below),
            (glint_storage::Format::V1, glint_storage::Codec::Raw, 0.3)
        );
        for (bad, key) in [
            ("store_format = v3", "store_format"),
            ("chunk_codec = zstd", "chunk_codec"),
            ("compact_below = lots", "compact_below"),
        ] {
            let e = load(&format!("[glint]\n{bad}\n")).unwrap_err().to_string();
            assert!(e.contains(key), "{e}");
        }
    }

    #[test]
    fn database_connection_option() {
        let load = |text: &str| Config::from_ini(Ini::load_from_str(text).unwrap());
        assert_eq!(load("").unwrap().store_config().catalog_url, None);
        let c = load("[database]\nconnection = postgresql+psycopg2://glance:pw@db:5432/glance\n")
            .unwrap();
        assert_eq!(
            c.store_config().catalog_url.as_deref(),
            Some("postgresql://glance:pw@db:5432/glance")
        );
        let e = load("[database]\nconnection = mysql+pymysql://glance:pw@db/glance\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("connection") && e.contains("postgresql://"),
            "{e}"
        );
    }

    #[test]
    fn chunk_store_option() {
        let load = |text: &str| Config::from_ini(Ini::load_from_str(text).unwrap());
        assert_eq!(load("").unwrap().store_config().pack_store, None);
        let c = load(
            "[chunk_store]\nendpoint = http://rgw:8080\nbucket = glint\naccess_key = a\nsecret_key = s\n",
        )
        .unwrap();
        let p = c.store_config().pack_store.unwrap();
        assert_eq!(
            (
                p.endpoint.as_str(),
                p.bucket.as_str(),
                p.region.as_str(),
                p.prefix.as_str()
            ),
            ("http://rgw:8080", "glint", "us-east-1", "packs")
        );
        let e = load("[chunk_store]\nendpoint = http://rgw:8080\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("bucket"), "{e}");
    }

    #[test]
    fn image_conversion_plugin_options() {
        let load = |text: &str| Config::from_ini(Ini::load_from_str(text).unwrap());
        assert!(load("").unwrap().glance.image_conversion.is_none());
        let c = load("[image_import_opts]\nimage_import_plugins = ['no_op', 'image_conversion']\n")
            .unwrap();
        let conv = c.glance.image_conversion.unwrap();
        assert_eq!(conv.output_format, "raw");
        assert_eq!(conv.work_dir, PathBuf::from("var/data/convert"));
        let c = load(
            "[image_import_opts]\nimage_import_plugins = image_conversion\n\
             [image_conversion]\noutput_format = qcow2\n[task]\nwork_dir = /srv/work\n",
        )
        .unwrap();
        let conv = c.glance.image_conversion.unwrap();
        assert_eq!(
            (conv.output_format.as_str(), conv.work_dir),
            ("qcow2", PathBuf::from("/srv/work"))
        );
        for (bad, key) in [
            ("[image_import_opts]\nimage_import_plugins = image_decompression\n", "image_import_plugins"),
            ("[image_import_opts]\nimage_import_plugins = image_conversion\n[image_conversion]\noutput_format = vmdk\n", "output_format"),
        ] {
            let e = load(bad).unwrap_err().to_string();
            assert!(e.contains(key), "{e}");
        }
    }

    #[test]
    fn hashing_algorithm_is_checked_at_start() {
        let algo = |text: &str| {
            Config::from_ini(Ini::load_from_str(text).unwrap()).map(|c| c.glance.hashing_algorithm)
        };
        assert_eq!(algo("").unwrap(), HashAlgo::Sha512);
        assert_eq!(
            algo("[DEFAULT]\nhashing_algorithm = SHA256\n").unwrap(),
            HashAlgo::Sha256
        );
        let e = algo("[DEFAULT]\nhashing_algorithm = sha3_512\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("hashing_algorithm") && e.contains("sha3_512"),
            "{e}"
        );
    }
}
