"""dockerdash settings: every knob comes from the environment.

The embedded default needs no server: SQLite (WAL) under DOCKERDASH_DATA_DIR and the
in-memory channel layer in one process. DATABASE_URL (PostgreSQL) and REDIS_URL
(channels-redis) switch to the scale-out shape.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from datetime import timedelta
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from dockerdash.datadir import DataDirError, data_dir_from, secure_data_dir, secure_sqlite


def envbool(name: str, default: str = "False") -> bool:
    return os.getenv(name, default).strip().lower() in ("1", "true", "yes", "on")


def envint(name: str, default: int) -> int:
    return int(os.getenv(name, default))


def envlist(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.getenv(name, default).split(",") if item.strip()]


BASE_DIR = Path(__file__).resolve().parent.parent
try:
    DATA_DIR = data_dir_from(os.getenv("DOCKERDASH_DATA_DIR"), BASE_DIR)
except DataDirError as e:
    raise ImproperlyConfigured(str(e)) from None
secure_data_dir(DATA_DIR)

# Django's debug pages show settings and the URL configuration to whoever triggers them:
# only on request, never by default (`make run` does not need it either).
DEBUG = envbool("DOCKERDASH_DEBUG", "False")


def _secret_key() -> str:
    if key := os.getenv("DOCKERDASH_SECRET_KEY"):
        return key
    # Without an explicit key we keep one on disk next to the database, so sessions
    # survive restarts and no key is ever baked into the code.
    path = DATA_DIR / "secret.key"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(50))
    return path.read_text().strip()


SECRET_KEY = _secret_key()


def _instance_id() -> str:
    # Which dashboard made a container machine (a label on it): two dashboards, or two test
    # runs, sharing a parent engine must never touch each other's machines.
    path = DATA_DIR / "instance.id"
    if not path.exists():
        with contextlib.suppress(FileExistsError), open(path, "x") as f:
            f.write(secrets.token_hex(6))
    return path.read_text().strip()


INSTANCE_ID = os.getenv("DOCKERDASH_INSTANCE_ID") or _instance_id()
ALLOWED_HOSTS = envlist("DOCKERDASH_ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]")
CSRF_TRUSTED_ORIGINS = envlist("DOCKERDASH_CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "channels",
    "axes",
    "machines",
]
# django-ninja, for its vendored Swagger UI (no CDN); not in `machine` commands (no pages):
# its import (pydantic, django.test, jinja2) would cost every `machine ls` 0.15 s.
if os.getenv("DOCKERDASH_CLI_PROCESS") != "1":
    INSTALLED_APPS.insert(INSTALLED_APPS.index("machines"), "ninja")

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Static files before the session and the login requirement: the login page needs them.
    "dockerdash.middleware.StaticFilesMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "dockerdash.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Who acts in this request, for the audit log's signal receivers (admin changes, logins).
    "machines.audit.log.AuditMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "dockerdash.urls"
ASGI_APPLICATION = "dockerdash.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

SQLITE_OPTIONS = {
    # WAL lets readers (pages, websockets) go on while the runner writes; IMMEDIATE takes
    # the write lock up front, so concurrent writers wait for `timeout` instead of failing
    # with "database is locked".
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    "transaction_mode": "IMMEDIATE",
    "timeout": 20,
}
if db_url := os.getenv("DATABASE_URL"):
    import dj_database_url

    DATABASES = {"default": dj_database_url.parse(db_url, conn_max_age=60)}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": DATA_DIR / "dockerdash.sqlite3",
        }
    }
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = SQLITE_OPTIONS
    secure_sqlite(DATABASES["default"]["NAME"])
    # Tests use a file, not memory, so that the worker and web processes they start share it.
    test_db = os.getenv("DOCKERDASH_TEST_DB") or str(DATA_DIR / "test.sqlite3")
    DATABASES["default"]["TEST"] = {"NAME": test_db}

if redis_url := os.getenv("REDIS_URL"):
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [redis_url], "capacity": 1500, "expiry": 30},
        }
    }
else:
    # The in-memory layer drops messages past its capacity without a word (100 by
    # default); a provisioning log can burst far beyond that.
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels.layers.InMemoryChannelLayer",
            "CONFIG": {"capacity": 5000, "expiry": 30},
        }
    }

AUTHENTICATION_BACKENDS = [
    # First: refuses every login of a locked-out user name or address (django-axes).
    "axes.backends.AxesStandaloneBackend",
    # Django's passwords and permissions (DOCKERDASH_LOCAL_LOGIN=0: no password logins).
    "machines.services.sso.LocalBackend",
    # Teams' roles on machine groups (machines/services/rights.py).
    "machines.services.rights.TeamBackend",
]

# Single sign-on (README "Users, teams and single sign-on"). mozilla-django-oidc: a small
# backend and two views; endpoints come from the issuer's discovery document.
LOCAL_LOGIN = envbool("DOCKERDASH_LOCAL_LOGIN", "True")
SSO_GROUP_MAP = os.environ.get("DOCKERDASH_SSO_GROUP_MAP", "")
OIDC_ISSUER = os.environ.get("DOCKERDASH_OIDC_ISSUER", "")
OIDC_NAME = os.environ.get("DOCKERDASH_OIDC_NAME", "single sign-on")
OIDC_RP_CLIENT_ID = os.environ.get("DOCKERDASH_OIDC_CLIENT_ID", "")
OIDC_RP_CLIENT_SECRET = os.environ.get("DOCKERDASH_OIDC_CLIENT_SECRET", "")
OIDC_RP_SCOPES = os.environ.get("DOCKERDASH_OIDC_SCOPES", "openid email profile groups")
OIDC_GROUPS_CLAIM = os.environ.get("DOCKERDASH_OIDC_GROUPS_CLAIM", "groups")
OIDC_USERNAME_CLAIM = os.environ.get("DOCKERDASH_OIDC_USERNAME_CLAIM", "preferred_username")
OIDC_RP_SIGN_ALGO = os.environ.get("DOCKERDASH_OIDC_SIGN_ALGO", "RS256")
OIDC_USE_PKCE = True  # with state and nonce (the library's defaults), all checked
OIDC_AUTHENTICATE_CLASS = "machines.services.sso.OIDCLoginView"
LOGIN_REDIRECT_URL_FAILURE = "/accounts/login/?sso=failed"
if OIDC_ISSUER:
    AUTHENTICATION_BACKENDS.insert(1, "machines.services.sso.OIDCBackend")
# LDAP (django-auth-ldap): a service account binds, finds the user, then their groups.
AUTH_LDAP_SERVER_URI = os.environ.get("DOCKERDASH_LDAP_URI", "")
AUTH_LDAP_BIND_DN = os.environ.get("DOCKERDASH_LDAP_BIND_DN", "")
AUTH_LDAP_BIND_PASSWORD = os.environ.get("DOCKERDASH_LDAP_BIND_PASSWORD", "")
if AUTH_LDAP_SERVER_URI:
    from machines.services.ldapconf import ldap_settings

    globals().update(ldap_settings(os.environ))
    AUTHENTICATION_BACKENDS.insert(1, "machines.services.ldapauth.LDAPBackend")

# Login throttling (django-axes, attempts kept in the database so that every web process
# shares them). A user name is locked after LOGIN_FAILURE_LIMIT failures, an address after
# the higher LOGIN_ADDRESS_FAILURE_LIMIT: one address is shared by everyone behind a proxy
# or NAT, so its limit must leave room for several people mistyping. Axes compares a single
# limit with the worst of its parameters; dockerdash.throttle applies one limit to each.
# A lock lasts LOGIN_COOLOFF_MINUTES after the failure that set it. Tries while locked are
# refused and not recorded: recording them would let a flood of tries grow the attempts
# table without end. Unlock: `manage.py axes_reset_username NAME`.
LOGIN_FAILURE_LIMIT = envint("DOCKERDASH_LOGIN_FAILURE_LIMIT", 10)
LOGIN_ADDRESS_FAILURE_LIMIT = envint("DOCKERDASH_LOGIN_ADDRESS_FAILURE_LIMIT", 50)
AXES_HANDLER = "dockerdash.throttle.LoginThrottle"
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]  # this order: see LoginThrottle
AXES_FAILURE_LIMIT = LOGIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = timedelta(minutes=envint("DOCKERDASH_LOGIN_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_CALLABLE = "dockerdash.throttle.lockout_response"
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
# A success must not wipe the address's failures: an attacker with an account of their
# own could otherwise reset their count on another user name by logging in now and then.
AXES_RESET_ON_SUCCESS = False
AXES_CLIENT_IP_CALLABLE = "dockerdash.throttle.client_address"
BEHIND_PROXY = envbool("DOCKERDASH_BEHIND_PROXY")

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "machines:list"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.getenv("DOCKERDASH_TIME_ZONE", "UTC")
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
# WhiteNoise serves the files where they are (as the finders see them), indexed at start: no
# collectstatic step a fresh clone or a second web process could miss, no copy that goes
# stale; a handful of files, so no hashed names or precompression; cached for 60 s.
WHITENOISE_USE_FINDERS = True
# Public files, but no reason to let other sites' scripts read them.
WHITENOISE_ALLOW_ALL_ORIGINS = False
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Secrets at rest: MultiFernet keys, newest first, comma separated. Without the variable a
# key file is generated (mode 0600) in the data folder on first use.
FIELD_KEYS = envlist("DOCKERDASH_FIELD_KEYS")
FIELD_KEYS_FILE = Path(os.getenv("DOCKERDASH_FIELD_KEYS_FILE", DATA_DIR / "field.keys"))

# Where per-machine client bundles (`machine env`) and the CA live on disk for the CLI.
CERTS_DIR = DATA_DIR / "machines"
# How long a client certificate downloaded from a machine's page is valid (a new one each time).
CLIENT_CERT_DAYS = envint("DOCKERDASH_CLIENT_CERT_DAYS", 30)


def _loopback_only(hosts: list[str]) -> bool:
    return bool(hosts) and all(h.lower() in ("127.0.0.1", "localhost", "[::1]") for h in hosts)


# HTTPS: the embedded server speaks plain HTTP. That is right while the dashboard answers
# to loopback names only (the default, `make run`): only a browser on this machine reaches
# it. Once it answers to another name (DOCKERDASH_ALLOWED_HOSTS) or sits behind a proxy,
# other machines reach it, and then only over HTTPS (a proxy in front terminates TLS): SSL
# redirect, Secure cookies and HSTS, so that `check --deploy` passes. DOCKERDASH_HTTPS
# says it outright; each knob below can still be set on its own.
HTTPS = envbool(
    "DOCKERDASH_HTTPS",
    str(BEHIND_PROXY or not _loopback_only(ALLOWED_HOSTS)),
)
SECURE_SSL_REDIRECT = envbool("DOCKERDASH_SSL_REDIRECT", str(HTTPS))
SESSION_COOKIE_SECURE = envbool("DOCKERDASH_SECURE_COOKIES", str(HTTPS))
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_HSTS_SECONDS = envint("DOCKERDASH_HSTS_SECONDS", 31536000 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("DOCKERDASH_HSTS_INCLUDE_SUBDOMAINS", str(HTTPS))
SECURE_HSTS_PRELOAD = envbool("DOCKERDASH_HSTS_PRELOAD", str(HTTPS))
if BEHIND_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.getenv("DOCKERDASH_LOG_LEVEL", "INFO")},
    "loggers": {
        # paramiko logs every failed attempt as an ERROR with a traceback (we report the
        # failure ourselves, once, in words), and its DEBUG can carry key material.
        "paramiko": {"level": "CRITICAL"},
        "daphne": {"level": "WARNING"},
        # Axes' INFO is a banner at every start and a line per login; lockouts are WARNINGs.
        "axes": {"level": "WARNING"},
        # The providers' SDKs (azure-core under pydo) log every request at INFO.
        "azure": {"level": "WARNING"},
    },
}

# Drivers beyond the built-in ones: "kind=dotted.path.DriverClass,..." (see the README's
# "Adding a driver").
EXTRA_DRIVERS = dict(item.split("=", 1) for item in envlist("DOCKERDASH_EXTRA_DRIVERS"))

# VMs on libvirt: the network they join unless one is given, and the domain type (kvm, or qemu
# for software emulation) when the probe of the hypervisor should be overridden.
KVM_NETWORK = os.getenv("DOCKERDASH_KVM_NETWORK", "default")
KVM_DOMAIN_TYPE = os.getenv("DOCKERDASH_KVM_DOMAIN_TYPE", "")
# The one folder a user's local VM image (--kvm-image PATH) may come from, and the origins
# (scheme://host[:port]) an image URL may use or redirect to even on a private address.
KVM_IMAGE_DIR = Path(os.getenv("DOCKERDASH_KVM_IMAGE_DIR") or DATA_DIR / "kvm-images")
KVM_IMAGE_MIRRORS = envlist("DOCKERDASH_KVM_IMAGE_MIRRORS")

# Runner knobs.
HEALTH_CHECK_INTERVAL = envint("DOCKERDASH_HEALTH_CHECK_INTERVAL", 30)
HEALTH_CHECK_TIMEOUT = envint("DOCKERDASH_HEALTH_CHECK_TIMEOUT", 3)
HEALTH_CHECK_CONCURRENCY = envint("DOCKERDASH_HEALTH_CHECK_CONCURRENCY", 64)
# Threads asking drivers for their hosts' state (engine pings need none: they are async).
HEALTH_CHECK_THREADS = envint("DOCKERDASH_HEALTH_CHECK_THREADS", 4)
SHUTDOWN_GRACE = envint("DOCKERDASH_SHUTDOWN_GRACE", 20)
# Watching engines (machines/engine/): at most this many engines per worker (its lease share
# is capped here too), connection attempts in flight at once, the longest pause between
# attempts to an engine that keeps failing, and threads streaming ssh:// engines (the SDK's
# paramiko transport needs one each; more ssh:// engines are health-checked only).
WORKER_MAX_ENGINES = envint("DOCKERDASH_WORKER_MAX_ENGINES", 2000)
WATCH_CONNECT_CONCURRENCY = envint("DOCKERDASH_WATCH_CONNECT_CONCURRENCY", 32)
WATCH_BACKOFF_MAX = envint("DOCKERDASH_WATCH_BACKOFF_MAX", 300)
WATCH_SSH_THREADS = envint("DOCKERDASH_WATCH_SSH_THREADS", 8)

# Cloud drivers: how long a new or restarted VM may take to run with a public address, then
# to answer SSH; how often to ask the provider meanwhile; how long region, size and image
# lists stay cached for the create form. (Tests shorten them.)
CLOUD_BOOT_TIMEOUT = envint("DOCKERDASH_CLOUD_BOOT_TIMEOUT", 600)
CLOUD_SSH_TIMEOUT = envint("DOCKERDASH_CLOUD_SSH_TIMEOUT", 300)
CLOUD_POLL_INTERVAL = float(os.getenv("DOCKERDASH_CLOUD_POLL_INTERVAL", "2"))
CLOUD_CATALOG_TTL = envint("DOCKERDASH_CLOUD_CATALOG_TTL", 300)

# Inside the engines: terminals, live stats, the audit log.
# A terminal with no keystroke for this long is closed (its process ends with it).
TERMINAL_IDLE_SECONDS = envint("DOCKERDASH_TERMINAL_IDLE_SECONDS", 15 * 60)
# Audit entries older than this are deleted by the runner (0 keeps them forever).
AUDIT_RETENTION_DAYS = envint("DOCKERDASH_AUDIT_RETENTION_DAYS", 365)
# Refused requests and sockets recorded per user (or address) and minute; more are dropped.
AUDIT_REFUSALS_PER_MINUTE = envint("DOCKERDASH_AUDIT_REFUSALS_PER_MINUTE", 10)
# Seconds between a host's CPU, memory and disk samples (over SSH, by the health checks).
HOST_USAGE_INTERVAL = envint("DOCKERDASH_HOST_USAGE_INTERVAL", 60)

# A bulk action runs at most this many of its operations at once.
BULK_CONCURRENCY = envint("DOCKERDASH_BULK_CONCURRENCY", 10)
# The machine list's page size (the containers page: CONTAINER_LIST_PAGE_SIZE).
MACHINE_LIST_PAGE_SIZE = envint("DOCKERDASH_MACHINE_LIST_PAGE_SIZE", 50)
CONTAINER_LIST_PAGE_SIZE = envint("DOCKERDASH_CONTAINER_LIST_PAGE_SIZE", 100)

# The REST API (/api/v1/): a token's default and longest life, and how many requests one
# token may make per minute (counted in the cache, so per process unless CACHES is shared).
API_TOKEN_DAYS = envint("DOCKERDASH_API_TOKEN_DAYS", 90)
API_TOKEN_MAX_DAYS = envint("DOCKERDASH_API_TOKEN_MAX_DAYS", 366)
API_RATE_LIMIT = envint("DOCKERDASH_API_RATE_LIMIT", 600)
# Outgoing webhooks: failed deliveries in a row before a hook is disabled.
WEBHOOK_MAX_FAILURES = envint("DOCKERDASH_WEBHOOK_MAX_FAILURES", 5)
# Attempts per delivery, the first retry's wait (doubling after), one attempt's timeout.
WEBHOOK_ATTEMPTS = envint("DOCKERDASH_WEBHOOK_ATTEMPTS", 4)
WEBHOOK_BACKOFF = float(os.getenv("DOCKERDASH_WEBHOOK_BACKOFF", "2"))
WEBHOOK_TIMEOUT = float(os.getenv("DOCKERDASH_WEBHOOK_TIMEOUT", "5"))
# Metrics history and alerts (machines/alerts): how long raw samples, 5-minute means and
# hourly means are kept; how often alert rules are checked against what is stored; whether
# the health checks also sample containers (CPU, memory, restarts: two engine calls each).
METRICS_RAW_HOURS = envint("DOCKERDASH_METRICS_RAW_HOURS", 24)
METRICS_5MIN_DAYS = envint("DOCKERDASH_METRICS_5MIN_DAYS", 30)
METRICS_HOURLY_DAYS = envint("DOCKERDASH_METRICS_HOURLY_DAYS", 365)
METRICS_CONTAINERS = envbool("DOCKERDASH_METRICS_CONTAINERS", "True")
ALERT_CHECK_INTERVAL = envint("DOCKERDASH_ALERT_CHECK_INTERVAL", 5)
# Where notices link to (e.g. https://dash.example.com); empty: no link.
ALERT_BASE_URL = os.getenv("DOCKERDASH_ALERT_BASE_URL", "").rstrip("/")

# Email notices go through Django's mailer (SMTP), configured from the environment.
MAILERS = {
    "default": {
        "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "OPTIONS": {
            "host": os.getenv("DOCKERDASH_EMAIL_HOST", "localhost"),
            "port": envint("DOCKERDASH_EMAIL_PORT", 25),
            "username": os.getenv("DOCKERDASH_EMAIL_USER", ""),
            "password": os.getenv("DOCKERDASH_EMAIL_PASSWORD", ""),
            "use_tls": envbool("DOCKERDASH_EMAIL_USE_TLS"),
            "use_ssl": envbool("DOCKERDASH_EMAIL_USE_SSL"),
            "timeout": envint("DOCKERDASH_EMAIL_TIMEOUT", 10),
        },
    }
}
DEFAULT_FROM_EMAIL = os.getenv("DOCKERDASH_EMAIL_FROM", "dockerdash@localhost")
