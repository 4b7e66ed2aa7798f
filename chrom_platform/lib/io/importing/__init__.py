"""`chrom import`: a plant's own CSV files (wide exports or long historian exports) through a
mapping file to the landing zone. See README "Bring your own data"."""

from chrom_platform.lib.io.importing.build import ImportReport, import_files
from chrom_platform.lib.io.importing.mapping import Mapping, load_mapping
from chrom_platform.lib.io.importing.readers import ImportRejected, Problem

__all__ = ["ImportRejected", "ImportReport", "Mapping", "Problem", "import_files", "load_mapping"]
