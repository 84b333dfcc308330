"""game-sessions: live and replayed casino game sessions on Apache Beam.

The same file packages the job for Dataflow workers (--setup_file=./setup.py).
"""
import setuptools

setuptools.setup(
    name="game-sessions",
    version="0.1.0",
    description="Beam job that turns bets, wins and rollbacks into game sessions",
    packages=setuptools.find_packages(include=["sessions", "sessions.*", "transforms", "transforms.*",
                                               "pipelines", "pipelines.*", "schemas", "tools"]),
    package_data={"schemas": ["*.avsc", "*.json", "lexicons/*.json"], "sessions": ["*.json"]},
    python_requires=">=3.10",
    install_requires=[
        "apache-beam[gcp]==2.77.0",
        "fastavro>=1.9",
        "google-cloud-pubsub>=2.18",
        # Campaign triggers: Google's CEL (C++ core, type-checked), rules files in YAML.
        "cel-expr-python>=0.1.3",
        "pyyaml>=6",
        "msgspec>=0.18",
    ],
    extras_require={
        "test": ["pytest>=8", "pytest-timeout>=2.3", "hypothesis>=6.100", "duckdb>=1.0", "sqlglot>=25", "atheris>=2.3"],
    },
)
