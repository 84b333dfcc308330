# The game-sessions Flex Template launcher (docs/flink-dataflow.md): Dataflow
# runs this image to build the job graph from the template's parameters and
# submit it. `make flex-template` builds it with Cloud Build. Workers do not
# use it: they run Beam's own Python SDK image and install this package from
# setup.py, staged by the launcher (FLEX_TEMPLATE_PYTHON_SETUP_FILE).
FROM gcr.io/dataflow-templates-base/python311-template-launcher-base

WORKDIR /template

# Only what setup.py packages, so the image cannot depend on anything the
# workers will not have (tests/test_dataflow_graph.py keeps the lists equal).
COPY setup.py main.py ./
COPY pipelines/ pipelines/
COPY schemas/ schemas/
COPY sessions/ sessions/
COPY tools/ tools/
COPY transforms/ transforms/

# The launcher imports the job and its pinned apache-beam to build the graph.
RUN pip install --no-cache-dir .

ENV FLEX_TEMPLATE_PYTHON_PY_FILE=/template/main.py
ENV FLEX_TEMPLATE_PYTHON_SETUP_FILE=/template/setup.py
