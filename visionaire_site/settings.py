"""Settings, all from the environment (see README "Configuration").

Every variable goes through a typed parser in `core.env`, so a bad
value stops the process with a message naming the variable.
"""

from __future__ import annotations

from pathlib import Path

from channels_redis.core import RedisChannelLayer
from django.core.exceptions import ImproperlyConfigured

from core.env import (
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_list,
    env_networks,
    env_path,
    env_score_points,
    env_str,
)

from .endpoints import DB_POOL_MAX_DEFAULT, database_settings, read_services_file

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = env_path("VISIONAIRE_DATA_DIR", BASE_DIR / "data")

SECRET_KEY = env_str("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    # A per-installation key kept in the data folder beats a constant in the code.
    _key_file = DATA_DIR / "secret_key"
    try:
        SECRET_KEY = _key_file.read_text().strip()
    except OSError:
        import secrets

        SECRET_KEY = secrets.token_urlsafe(50)
        _key_file.parent.mkdir(parents=True, exist_ok=True)
        _key_file.write_text(SECRET_KEY)
DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["*"])

# --- servers -----------------------------------------------------------------
_embedded = read_services_file(DATA_DIR)
DATABASE_URL = env_str("DATABASE_URL", _embedded.get("database_url", ""))
REDIS_URL = env_str("REDIS_URL", _embedded.get("redis_url", ""))
if not DATABASE_URL:
    raise ImproperlyConfigured(
        "DATABASE_URL is not set and no embedded PostgreSQL is running: "
        "start the platform with `python3 visionaire.py up` or set DATABASE_URL"
    )
if not REDIS_URL:
    raise ImproperlyConfigured(
        "REDIS_URL is not set and no embedded Redis is running: "
        "start the platform with `python3 visionaire.py up` or set REDIS_URL"
    )
# One connection pool per process (API, each worker, beat, management commands);
# see README "Database connections" for the budget against max_connections.
DB_POOL_MAX = env_int("VISIONAIRE_DB_POOL_MAX", DB_POOL_MAX_DEFAULT, minimum=1, maximum=1000)
DB_POOL_MIN = env_int("VISIONAIRE_DB_POOL_MIN", 2, minimum=0, maximum=1000)
# Longest wait for a free connection before the request answers 503 "database busy".
DB_POOL_TIMEOUT_SECONDS = env_float("VISIONAIRE_DB_POOL_TIMEOUT_SECONDS", 10.0, minimum=0.1)
DATABASES = {
    "default": database_settings(
        DATABASE_URL,
        pool_min=DB_POOL_MIN,
        pool_max=DB_POOL_MAX,
        pool_wait_seconds=DB_POOL_TIMEOUT_SECONDS,
        application_name=env_str("VISIONAIRE_DB_APPLICATION_NAME", "visionaire"),
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "django_prometheus",
    "corsheaders",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "platform_config",
    "analytics",
    "streams",
    "events",
    "workers",
    "faces",
    "vehicles",
    "viewing",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "visionaire_site.middleware.RequestIdMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "visionaire_site.middleware.TokenAuthMiddleware",
    "visionaire_site.middleware.BodySizeMiddleware",
    "visionaire_site.middleware.UnstorableTextMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # Innermost: turns a PostgreSQL or Redis outage raised by a view into a 503.
    "visionaire_site.middleware.OutageMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "visionaire_site.urls"
ASGI_APPLICATION = "visionaire_site.asgi.application"
WSGI_APPLICATION = None
APPEND_SLASH = False  # the contract's paths have no trailing slash

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = None  # WhiteNoise serves from the apps (see WHITENOISE_USE_FINDERS)
MEDIA_ROOT = env_path("VISIONAIRE_MEDIA_DIR", DATA_DIR / "media")
MEDIA_URL = "media/"
# Static files are served by WhiteNoise straight from the apps (no collectstatic
# step): the admin and the API docs UI work from `visionaire.py up` as they are.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = False
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# --- HTTP API ----------------------------------------------------------------
API_MAX_BODY_BYTES = env_int("VISIONAIRE_MAX_BODY_BYTES", 16 * 1024 * 1024, minimum=1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = API_MAX_BODY_BYTES
API_TOKENS = env_list("VISIONAIRE_API_TOKENS", [])
# JSON bodies nested deeper than this answer 400 (arrays and objects; the body itself is level 1).
API_MAX_JSON_DEPTH = env_int("VISIONAIRE_MAX_JSON_DEPTH", 64, minimum=2, maximum=256)
# Largest decoded image a search or extract request may carry (also bounded by the body limit).
SEARCH_MAX_IMAGE_BYTES = env_int("VISIONAIRE_SEARCH_MAX_IMAGE_BYTES", 10 * 1024 * 1024, minimum=1024)
# Routes left open when tokens are set (the contract allows `/` and `/metrics`).
API_OPEN_ROOT = env_bool("VISIONAIRE_OPEN_ROOT", True)
API_OPEN_METRICS = env_bool("VISIONAIRE_OPEN_METRICS", True)

REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["core.parsers.JsonParser"],
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "UNAUTHENTICATED_USER": None,
    "EXCEPTION_HANDLER": "core.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "COERCE_DECIMAL_TO_STRING": False,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Visionaire4-compatible video analytics API",
    "DESCRIPTION": "Streams, pipelines, analytics, live viewing, events and platform configuration.",
    "VERSION": "4.50.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "core.openapi.add_auth_responses",
        "core.openapi.describe_path_parameters",
        "core.openapi.close_request_objects",
    ],
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": "",
    "APPEND_COMPONENTS": {
        "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
    },
}

# CORS is switched on and off at run time by /config/platform (see
# platform_config.signals); the library does the header work.
CORS_ALLOW_ALL_ORIGINS = False
CORS_URLS_REGEX = r"^/.*$"

# --- Redis, Celery, Channels -------------------------------------------------
CELERY_BROKER_URL = REDIS_URL
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A stream task runs for as long as its stream: a lost broker connection (Redis
# away for a while) must leave it running, whatever a future Celery defaults to,
# and the worker reconnects for as long as it takes (Celery gives up after 100
# tries by default, and the worker, with every stream in it, would exit).
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BEAT_SCHEDULE_FILENAME = str(DATA_DIR / "run" / "celerybeat-schedule")
# Periodic jobs; each app adds its entries here.
# Tasks without a node queue (the periodic jobs) go to a queue every worker consumes.
CELERY_TASK_DEFAULT_QUEUE = "control"
CELERY_BEAT_SCHEDULE = {
    # A licence past its expiry falls back to the community allowance within a minute.
    "licence-expiry": {"task": "platform_config.licence_expire", "schedule": 60.0},
    # Active streams that run nowhere (worker crash, lost message) are started again.
    "streams-reconcile": {
        "task": "workers.streams_reconcile",
        "schedule": env_float("VISIONAIRE_RECONCILE_SECONDS", 5.0, minimum=0.5),
    },
    # Events past retention_days or over max_events_per_stream are removed in small batches.
    "events-retention": {
        "task": "events.retention_run",
        "schedule": env_float("VISIONAIRE_RETENTION_SECONDS", 60.0, minimum=1.0),
    },
}

# Every Redis client of the platform sets these itself (live/redis.py,
# viewing/hub.py, the channel layer below) rather than take a client library's
# defaults, which change between versions (redis-py 8 made 5 s the default).
REDIS_CLIENT_OPTIONS = {
    "socket_timeout": 5.0,  # a command's reply (or a blocking read's own timeout) comes by then
    "socket_connect_timeout": 3.0,
    "socket_keepalive": True,
    "health_check_interval": 30,  # PING a connection idle this long before using it
}
# Channels' Redis layer waits for each WebSocket's messages with a blocking read of
# `brpop_timeout` seconds (5), over and over while the socket is idle: the socket
# timeout must be well above it, or an idle subscriber's read times out just as
# Redis answers "nothing yet" and the WebSocket is dropped.
CHANNEL_LAYER_SOCKET_TIMEOUT = RedisChannelLayer.brpop_timeout + 10.0
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            "hosts": [
                {"address": REDIS_URL, **REDIS_CLIENT_OPTIONS, "socket_timeout": CHANNEL_LAYER_SOCKET_TIMEOUT}
            ],
            "capacity": 500,
            "expiry": 30,
        },
    }
}

# --- live viewing (viewing/hub.py): the bounds of one API process ----------------
VIEWING_MAX_CLIENTS = env_int("VISIONAIRE_VIEWING_MAX_CLIENTS", 500, minimum=1)
VIEWING_MAX_VARIANTS_PER_STREAM = env_int("VISIONAIRE_VIEWING_MAX_VARIANTS_PER_STREAM", 8, minimum=1)
# A variant nobody watches any more is kept this long, for a viewer that reconnects.
VIEWING_GRACE_SECONDS = env_float("VISIONAIRE_VIEWING_GRACE_SECONDS", 2.0, minimum=0.0)
# No frame for this long: viewers get a placeholder showing the stream's state every second.
VIEWING_STALE_SECONDS = env_float("VISIONAIRE_VIEWING_STALE_SECONDS", 2.0, minimum=0.2)
# /stream_jpeg waits at most this long for a frame.
VIEWING_SNAPSHOT_WAIT_SECONDS = env_float("VISIONAIRE_VIEWING_SNAPSHOT_WAIT_SECONDS", 5.0, minimum=0.5)

# --- platform ----------------------------------------------------------------
PLATFORM_NAME = "Visionaire4"
PLATFORM_VERSION = {"major": 4, "minor": 50, "patch": 0}
NODE_NUM = env_int("VISIONAIRE_NODE_NUM", 0, minimum=0, maximum=1023)
MAX_NODE_NUM = 1023
NODE_HEARTBEAT_SECONDS = env_float("VISIONAIRE_HEARTBEAT_SECONDS", 2.0, minimum=0.1)
# A node whose last heartbeat is older than this is reported offline.
NODE_OFFLINE_AFTER_SECONDS = env_float("VISIONAIRE_NODE_OFFLINE_AFTER_SECONDS", 10.0, minimum=0.5)
# Directory that file stream addresses must live under.
STREAM_MEDIA_ROOT = env_path("VISIONAIRE_STREAM_MEDIA_ROOT", DATA_DIR / "videos")
STREAM_ALLOWED_SCHEMES = env_list(
    "VISIONAIRE_STREAM_SCHEMES", ["rtsp", "rtsps", "http", "https", "file", "v4l2"]
)
# Where network stream addresses may point (live/address_policy.py): an address must
# be in an allowed network (empty: any) and in no refused one, and never on this
# platform's own API, PostgreSQL or Redis port. The default refuses link-local
# ranges, where cloud metadata services answer.
STREAM_ALLOW_NETWORKS = env_networks("VISIONAIRE_STREAM_ALLOW_NETWORKS", [])
STREAM_DENY_NETWORKS = env_networks("VISIONAIRE_STREAM_DENY_NETWORKS", ["169.254.0.0/16", "fe80::/10"])
# The port the API listens on (the launcher passes its --port down to every process).
API_PORT = env_int("VISIONAIRE_API_PORT", 4004, minimum=1, maximum=65535)
DEFAULT_MAX_STREAMS_PER_NODE = env_int("VISIONAIRE_MAX_STREAMS_PER_NODE", 16, minimum=1, maximum=1024)
DEFAULT_EVENT_RETENTION_DAYS = env_int("VISIONAIRE_EVENT_RETENTION_DAYS", 30, minimum=1, maximum=36500)
DEFAULT_MAX_EVENTS_PER_STREAM = env_int("VISIONAIRE_MAX_EVENTS_PER_STREAM", 100_000, minimum=1)
# Storage quota in bytes for /database/stats; 0 means "the free space of the volume".
STORAGE_QUOTA_BYTES = env_int("VISIONAIRE_STORAGE_QUOTA_BYTES", 0, minimum=0)
LOG_LEVEL = env_choice("VISIONAIRE_LOG_LEVEL", "info", ["debug", "info", "warning", "error", "critical"])

# Stream runtime.
RTSP_TRANSPORT = env_choice("VISIONAIRE_RTSP_TRANSPORT", "tcp", ["tcp", "udp", "http", "udp_multicast"])
STREAM_OPEN_TIMEOUT_SECONDS = env_float("VISIONAIRE_STREAM_OPEN_TIMEOUT_SECONDS", 10.0, minimum=0.5)
# No frame for this long on an open source: RECONNECTING ("stalled source").
STREAM_STALL_SECONDS = env_float("VISIONAIRE_STREAM_STALL_SECONDS", 10.0, minimum=0.5)
STREAM_LOOP_FILES = env_bool("VISIONAIRE_STREAM_LOOP_FILES", True)
# Read files at their own frame rate, as a camera delivers; off only for benchmarks of raw decode.
STREAM_PACE_FILES = env_bool("VISIONAIRE_STREAM_PACE_FILES", True)
# Files hand every frame to the analytics (decoding waits for them; frames carry
# their time in the video): complete analysis of recorded footage. Off: a file
# plays like a camera, and frames the analytics cannot keep up with are dropped.
STREAM_EVERY_FILE_FRAME = env_bool("VISIONAIRE_STREAM_EVERY_FILE_FRAME", False)
STREAM_BACKOFF_INITIAL_SECONDS = env_float("VISIONAIRE_STREAM_BACKOFF_INITIAL_SECONDS", 0.5, minimum=0.05)
STREAM_BACKOFF_MAX_SECONDS = env_float("VISIONAIRE_STREAM_BACKOFF_MAX_SECONDS", 30.0, minimum=0.1)
STREAM_LEASE_SECONDS = env_float("VISIONAIRE_STREAM_LEASE_SECONDS", 10.0, minimum=1.0)
STREAM_START_GRACE_SECONDS = env_float("VISIONAIRE_STREAM_START_GRACE_SECONDS", 30.0, minimum=1.0)
STREAM_STATS_SECONDS = 1.0
STREAM_DESIRED_CHECK_SECONDS = env_float("VISIONAIRE_STREAM_DESIRED_CHECK_SECONDS", 2.0, minimum=0.2)
STREAM_STOP_TIMEOUT_SECONDS = 10.0
# Events held in memory by a worker's event writer (while it stores, or while the
# database is unavailable); past that they go to a spool file of at most
# EVENT_SPOOL_MAX_BYTES (0: no spool, drop instead), then they are dropped and counted.
EVENT_QUEUE_CAPACITY = env_int("VISIONAIRE_EVENT_QUEUE_CAPACITY", 1000, minimum=10)
EVENT_SPOOL_DIR = env_path("VISIONAIRE_EVENT_SPOOL_DIR", DATA_DIR / "spool")
EVENT_SPOOL_MAX_BYTES = env_int("VISIONAIRE_EVENT_SPOOL_MAX_BYTES", 1024**3, minimum=0)
# Retention job (events.retention): rows per DELETE, and how long one run may work.
RETENTION_BATCH_SIZE = env_int("VISIONAIRE_RETENTION_BATCH_SIZE", 1000, minimum=10, maximum=100_000)
RETENTION_TIME_BUDGET_SECONDS = env_float("VISIONAIRE_RETENTION_TIME_BUDGET_SECONDS", 50.0, minimum=1.0)
# Smart search (events/search.py): HNSW candidate list size (recall vs speed, see bench/README.md),
# and the faces of a query image used (the most confident first) and their lowest detection score.
SEARCH_HNSW_EF_SEARCH = env_int("VISIONAIRE_SEARCH_HNSW_EF_SEARCH", 100, minimum=10, maximum=1000)
# Filtered image searches: exact up to this many events, else an iterative HNSW scan (tuples bounded).
SEARCH_EXACT_SCAN_MAX = env_int("VISIONAIRE_SEARCH_EXACT_SCAN_MAX", 20_000, minimum=0, maximum=10_000_000)
SEARCH_HNSW_MAX_SCAN_TUPLES = env_int(
    "VISIONAIRE_SEARCH_HNSW_MAX_SCAN_TUPLES", 50_000, minimum=1000, maximum=10_000_000
)
SEARCH_MAX_QUERY_FACES = env_int("VISIONAIRE_SEARCH_MAX_QUERY_FACES", 5, minimum=1, maximum=50)
SEARCH_FACE_MIN_SCORE = env_float("VISIONAIRE_SEARCH_FACE_MIN_SCORE", 0.8, minimum=0.0)
# Text search scores at most this many candidate events per query word (see events/search.py).
SEARCH_TEXT_CANDIDATES = env_int("VISIONAIRE_SEARCH_TEXT_CANDIDATES", 2000, minimum=100, maximum=1_000_000)
# The event writer stores up to this many events per transaction, waiting at most
# EVENT_BATCH_WAIT_MS after the first one for others to join it.
EVENT_BATCH_SIZE = env_int("VISIONAIRE_EVENT_BATCH_SIZE", 100, minimum=1, maximum=10_000)
EVENT_BATCH_WAIT_MS = env_int("VISIONAIRE_EVENT_BATCH_WAIT_MS", 50, minimum=0, maximum=10_000)

# Licensing: the issuer's Ed25519 public key (PEM text or a path to a PEM file).
LICENCE_PUBLIC_KEY = env_str("VISIONAIRE_LICENCE_PUBLIC_KEY", "")
# Seats per analytic available without a licence check-in.
COMMUNITY_SEATS_PER_ANALYTIC = env_int("VISIONAIRE_COMMUNITY_SEATS", 4, minimum=0, maximum=1024)
# Extra analytic plugin modules to import (each registers its analytics).
ANALYTIC_MODULES = env_list("VISIONAIRE_ANALYTIC_MODULES", [])

# Face recognition (the face analytics' engine, and the faces app). The face tables
# store the embedder's vectors (128-d for dlib; face_reembed resizes them for another).
# dlib-onnx: dlib's model converted to ONNX (cached under DATA_DIR/models, checked
# against dlib; dlib itself when that fails); dlib: dlib itself; onnx: a model of
# your own (VISIONAIRE_FACE_ONNX_*).
FACE_EMBEDDER = env_choice("VISIONAIRE_FACE_EMBEDDER", "dlib-onnx", ["dlib-onnx", "dlib", "onnx"])
FACE_ONNX_MODEL = env_str("VISIONAIRE_FACE_ONNX_MODEL", "")
FACE_ONNX_INPUT_SIZE = env_int("VISIONAIRE_FACE_ONNX_INPUT_SIZE", 112, minimum=16, maximum=1024)
FACE_ONNX_MEAN = env_float("VISIONAIRE_FACE_ONNX_MEAN", 127.5)
FACE_ONNX_STD = env_float("VISIONAIRE_FACE_ONNX_STD", 127.5, minimum=1e-6)
FACE_ONNX_RGB = env_bool("VISIONAIRE_FACE_ONNX_RGB", True)
FACE_ONNX_SIMILARITY_SCALE = env_float("VISIONAIRE_FACE_ONNX_SIMILARITY_SCALE", 4.0, minimum=0.01)
# The ONNX embedder's measured per-pair false-accept rates ("0.62:1e-2,0.70:1e-3,0.76:1e-4",
# face_eval's verification figures): its 1:N thresholds then follow the gallery size.
# Unset: the model is uncalibrated (a fixed threshold, no false-match probability).
FACE_ONNX_FALSE_ACCEPT = env_score_points("VISIONAIRE_FACE_ONNX_FALSE_ACCEPT")
# Each worker's face embedding runtime (the face analytics' batching.py): the faces of all
# its streams are embedded together, up to this many per model call or after this
# wait; beyond the queue, faces are refused (a stream embeds them at a later frame).
# Batch size 0: 32 on a GPU, 1 on a CPU (batches across streams did not pay at 1-4 streams, see
# bench/README.md); 1: each stream embeds its own faces (a frame's faces in one call).
# enroll_folder batches by this too (0: 8 on a CPU, 32 on a GPU).
FACE_EMBED_BATCH_SIZE = env_int("VISIONAIRE_FACE_EMBED_BATCH_SIZE", 0, minimum=0, maximum=256)
FACE_EMBED_BATCH_WAIT_MS = env_float("VISIONAIRE_FACE_EMBED_BATCH_WAIT_MS", 5.0, minimum=0.0)
FACE_EMBED_QUEUE_CAPACITY = env_int("VISIONAIRE_FACE_EMBED_QUEUE_CAPACITY", 128, minimum=1, maximum=10_000)
# Frames are shrunk to this longest side before detection (smallest face found: ~16 px at that scale).
FACE_DETECT_MAX_SIDE = env_int("VISIONAIRE_FACE_DETECT_MAX_SIDE", 640, minimum=64, maximum=4096)
FACE_DETECT_MIN_SCORE = env_float("VISIONAIRE_FACE_DETECT_MIN_SCORE", 0.8, minimum=0.0)
# Enrollment photos (the face quality measure, see docs/face-accuracy.md): smallest face (px, the
# box's smaller side), lowest sharpness of the aligned face (ordinary photos: 0.2-2.9), widest turn.
FACE_ENROLL_MIN_FACE_SIZE = env_int("VISIONAIRE_FACE_ENROLL_MIN_FACE_SIZE", 40, minimum=1)
FACE_ENROLL_MIN_SHARPNESS = env_float("VISIONAIRE_FACE_ENROLL_MIN_SHARPNESS", 0.15, minimum=0.0)
FACE_ENROLL_MAX_YAW = env_float("VISIONAIRE_FACE_ENROLL_MAX_YAW", 45.0, minimum=0.0)
# /v1/face/match answers match=true at or above this similarity.
FACE_MATCH_THRESHOLD = env_float("VISIONAIRE_FACE_MATCH_THRESHOLD", 0.85, minimum=0.0)
# /v1/face/recognition names a candidate (`match`) at the similarity that keeps the chance of
# naming a stranger at this rate for the keyspace's size (the face score model);
# VISIONAIRE_FACE_RECOGNITION_THRESHOLD, when set, is a fixed similarity instead.
FACE_MAX_FALSE_MATCH_RATE = env_float("VISIONAIRE_FACE_MAX_FALSE_MATCH_RATE", 0.01, minimum=1e-9)
if not FACE_MAX_FALSE_MATCH_RATE < 1:
    raise ImproperlyConfigured(
        f"VISIONAIRE_FACE_MAX_FALSE_MATCH_RATE must be below 1 (got {FACE_MAX_FALSE_MATCH_RATE})"
    )
FACE_RECOGNITION_THRESHOLD = env_float("VISIONAIRE_FACE_RECOGNITION_THRESHOLD", None, minimum=0.0)
FACE_MAX_ENROLLMENT = env_int("VISIONAIRE_FACE_MAX_ENROLLMENT", 100_000, minimum=1)
FACE_MAX_KEYSPACE = env_int("VISIONAIRE_FACE_MAX_KEYSPACE", 100, minimum=1)
FACE_MAX_VARIATIONS = env_int("VISIONAIRE_FACE_MAX_VARIATIONS", 20, minimum=1)
# Registered vehicles (plate watch lists): lists, and vehicles over every list.
VEHICLE_MAX_LISTS = env_int("VISIONAIRE_VEHICLE_MAX_LISTS", 100, minimum=1)
VEHICLE_MAX_VEHICLES = env_int("VISIONAIRE_VEHICLE_MAX_VEHICLES", 1_000_000, minimum=1)
# 1:N search: the HNSW candidate list (hnsw.ef_search; raised to the rows a search reads).
# Higher finds the true nearest faces more often and costs latency (see bench/README.md).
FACE_SEARCH_EF_SEARCH = env_int("VISIONAIRE_FACE_SEARCH_EF_SEARCH", 100, minimum=10, maximum=1000)
# Largest face image a /v1/face request may carry: bytes, and the pixels its header
# declares (checked before decoding: a small file can declare a huge picture).
FACE_MAX_IMAGE_BYTES = env_int("VISIONAIRE_FACE_MAX_IMAGE_BYTES", 10 * 1024 * 1024, minimum=1024)
FACE_MAX_IMAGE_PIXELS = env_int("VISIONAIRE_FACE_MAX_IMAGE_PIXELS", 40_000_000, minimum=10_000)

# Object detector slot (analytics/objects/detector.py documents the model contract).
# Empty model: the bundled YOLOv3-tiny, converted to ONNX once under <data>/models.
OBJECT_DETECTOR_MODEL = env_str("VISIONAIRE_OBJECT_DETECTOR_MODEL", "")
# Square input size; 0: the model's own (the bundled model's cfg says 416; multiples of 32).
OBJECT_DETECTOR_INPUT_SIZE = env_int("VISIONAIRE_OBJECT_DETECTOR_INPUT_SIZE", 0, minimum=0, maximum=4096)
# Class names file, one a line; empty: the model's metadata, else the 80 COCO names.
OBJECT_DETECTOR_CLASSES = env_str("VISIONAIRE_OBJECT_DETECTOR_CLASSES", "")
OBJECT_DETECTOR_LAYOUT = env_choice(
    "VISIONAIRE_OBJECT_DETECTOR_LAYOUT", "auto", ["auto", "boxes_scores", "yolov5", "yolov8"]
)
OBJECT_DETECTOR_MIN_SCORE = env_float("VISIONAIRE_OBJECT_DETECTOR_MIN_SCORE", 0.25, minimum=0.0)
OBJECT_DETECTOR_NMS_IOU = env_float("VISIONAIRE_OBJECT_DETECTOR_NMS_IOU", 0.45, minimum=0.01)
# Each worker's batching runtime: frames of all its streams run together, up to
# this many per inference or after this wait; beyond the queue, frames are refused.
# Batch size 1: each stream's thread runs its own frame, no inference thread; 0: 8 when the
# detector runs on a GPU, 1 on a CPU, where batches did not pay (see bench/README.md).
DETECT_BATCH_SIZE = env_int("VISIONAIRE_DETECT_BATCH_SIZE", 0, minimum=0, maximum=256)
DETECT_BATCH_WAIT_MS = env_float("VISIONAIRE_DETECT_BATCH_WAIT_MS", 5.0, minimum=0.0)
DETECT_QUEUE_CAPACITY = env_int("VISIONAIRE_DETECT_QUEUE_CAPACITY", 32, minimum=1, maximum=10_000)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
    },
    "filters": {"request_id": {"()": "visionaire_site.middleware.RequestIdLogFilter"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["request_id"]}
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL.upper()},
    # psycopg's pool logs each failed reconnection attempt; visionaire_site.db says
    # once when the database goes away and when it is back.
    "loggers": {"django.request": {"level": "ERROR"}, "psycopg.pool": {"level": "ERROR"}},
}
