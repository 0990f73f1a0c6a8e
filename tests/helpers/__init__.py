"""What tests share, by concern: ``stores`` (Redis, PostgreSQL, Spark, a switchable
link), ``repos`` (copies and clones of the example repos), ``service`` (the server, its
requests, the CLI), ``data`` (the example's rows and bad inputs). Fixtures live in
``conftest.py``; ``from tests.helpers import X`` names any of them."""

from tests.helpers.data import (  # noqa: F401
    BAD_EVENTS,
    current_features,
    register_copy,
    user_ids,
    with_naive,
    with_null_key,
    with_row,
)
from tests.helpers.repos import (  # noqa: F401
    EXAMPLE_REPO,
    PAYMENTS_REPO,
    ROOT,
    SPARK_OFFLINE,
    clone_repo,
    copy_example_repo,
    copy_payments_repo,
    copy_tiny_repo,
    example_data,
    newsletter_events,
    payments_generator,
    redis_yaml,
    registry_state,
    set_online_store,
    set_project,
    set_registry,
    spark_yaml,
    sqlite_yaml,
)
from tests.helpers.service import (  # noqa: F401
    T,
    batch_runs,
    cli,
    post_predict,
    predict_all,
    scrape,
    serve_app,
)
from tests.helpers.stores import (  # noqa: F401
    POSTGRES,
    PROFILE,
    PROFILE_REDIS_DB,
    PROFILES,
    REDIS,
    REDIS_DB,
    TcpSwitch,
    new_pg_schema,
    pg_admin,
    postgres_unavailable,
    production,
    redis_unavailable,
    spark_unavailable,
)
