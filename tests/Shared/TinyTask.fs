/// The tiny training task the CLI and fault tests run the tool on.
module GroupedNewton.TestSupport.TinyTask

/// An MLP 784-8-10 on 270 synthetic training samples, batch 50 (6 steps per epoch), one
/// thread (bit-identical reruns).
let args = [
    "--dataset"
    "synthetic"
    "--hidden"
    "8"
    "--samples"
    "300"
    "--batch-size"
    "50"
    "--threads"
    "1"
]
