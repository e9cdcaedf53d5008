# -*- Python -*- lit configuration for qforge.
import os
import shutil

import lit.formats
import lit.util

config.name = "qforge"
config.test_format = lit.formats.ShTest(not lit.util.which("bash") is None)
config.suffixes = [".mlir", ".test"]
config.excludes = ["Inputs", "unit", "lit.cfg.py", "lit.site.cfg.py"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.qforge_obj_root, "test")

config.environment["FILECHECK_OPTS"] = "-enable-var-scope"
config.environment["PYTHONDONTWRITEBYTECODE"] = "1"
for var in ("HOME", "TMPDIR", "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS", "TSAN_OPTIONS"):
    if var in os.environ:
        config.environment[var] = os.environ[var]

path = [config.qforge_tools_dir, config.llvm_tools_dir, config.environment.get("PATH", "")]
config.environment["PATH"] = os.pathsep.join(path)
config.substitutions.append(("%python", config.python_executable))
config.substitutions.append(("%testdir", config.test_source_root))
config.substitutions.append(("%bindir", config.qforge_tools_dir))
config.substitutions.append(("%fuzzdir", os.path.join(os.path.dirname(config.test_source_root), "fuzz")))
config.substitutions.append(("%models", os.path.join(os.path.dirname(config.test_source_root), "models")))
config.substitutions.append(("%fakecuda", os.path.join(config.qforge_obj_root, "test", "fake-cuda")))
config.substitutions.append(("%ptxas", config.ptxas or "ptxas-not-found"))

# `ptxas` assembles emitted PTX; tests that need it say `REQUIRES: ptxas`.
if config.ptxas and os.path.exists(config.ptxas):
    config.available_features.add("ptxas")
# Kernels execute only where a CUDA device is present: `REQUIRES: cuda-device`.
if os.path.exists("/dev/nvidiactl") or os.path.exists("/dev/nvidia0"):
    config.available_features.add("cuda-device")
