"""Names of the files every analysis tree has (kept apart from `create` so readers import no templates)."""

METADATA_FILE = "analysis_metadata.yaml"
GRID_FILE = "configs/grid.yaml"
WORKFLOW_FILE = "configs/workflow.yaml"
STATE_DIR = ".gridpipe"
CREATE_LOG = "logs/create-analysis.log"
