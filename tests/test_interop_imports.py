"""The interop modules keep ``import fastconv`` light: onnx, onnxruntime, torch and the safetensors
package are imported only by the functions that need them."""
import sys

from _subprocess import run


def test_interop_modules_import_no_optional_package():
    code = ("import sys, fastconv; lazy = 'fastconv.onnx' not in sys.modules; "
            "import fastconv.onnx, fastconv.safetensors, fastconv._torch_checkpoint; fastconv.onnx.export; "
            "print(lazy, [m for m in ('onnx', 'onnxruntime', 'torch', 'safetensors', 'scipy.special') "
            "if m in sys.modules])")
    out = run([sys.executable, "-c", code], timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True []"
