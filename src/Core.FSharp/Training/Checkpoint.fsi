namespace GroupedNewton

/// <summary>What a checkpoint records about its run beside parameters and optimizer state.</summary>
type RunRecord = {
    /// <summary>The run's configuration as (name, value) pairs, spelled as the writer chooses; compared on resume.
    /// Read back sorted by name.</summary>
    Settings: (string * string) list
    /// <summary>The position of the curvature batch stream (None when the run has none).</summary>
    CurvaturePosition: int64 option
    /// <summary>The first training step's loss of the run, the divergence guard's reference (None before the first step).</summary>
    ReferenceLoss: float option
} with

    /// <summary>No settings, no curvature position, no reference loss.</summary>
    static member Empty: RunRecord

/// <summary>What <c>Checkpoint.readInfo</c> and <c>Checkpoint.restore</c> find in a checkpoint file.</summary>
type CheckpointInfo = {
    /// <summary>The file.</summary>
    Path: string
    /// <summary>The epoch the checkpoint was written after (≥ 0).</summary>
    Epoch: int
    /// <summary>The name of the model it was written for.</summary>
    Model: string
    /// <summary>The run record.</summary>
    Run: RunRecord
}

/// <summary>Training checkpoints: the epoch reached, the parameter values, the optimizer state and the
/// run record, in one file written atomically (temporary file, then rename).</summary>
/// <remarks>One format for the trainer, the command line and the C# facade. Every read verifies
/// the whole file (checksum, kind, model name, every parameter's shape and dtype) and raises
/// <c>StateFormatException</c> naming the path and the first problem; a restore changes nothing
/// unless everything fits.</remarks>
module Checkpoint =
    // ---- writing

    /// <summary>The store entries of a checkpoint (core use only).</summary>
    val internal entries: epoch: int -> model: Model -> optimizer: Optimizer -> run: RunRecord -> (string * StoreValue) list

    /// <summary>Writes a checkpoint of (epoch, parameters, optimizer state, run record) to <c>path</c>.</summary>
    /// <exception cref="System.IO.DirectoryNotFoundException">the folder does not exist (folders are not created).</exception>
    val saveRun: path: string -> epoch: int -> model: Model -> optimizer: Optimizer -> run: RunRecord -> unit

    /// <summary>Writes a checkpoint of (epoch, parameters, optimizer state) with an empty run record.</summary>
    /// <exception cref="System.IO.DirectoryNotFoundException">the folder does not exist.</exception>
    val save: path: string -> epoch: int -> model: Model -> optimizer: Optimizer -> unit

    // ---- reading

    /// <summary>The epoch, model name and run record of a checkpoint (the file is fully verified).</summary>
    /// <exception cref="System.IO.FileNotFoundException">the file does not exist.</exception>
    /// <exception cref="GroupedNewton.StateFormatException">the file is not a valid checkpoint.</exception>
    val readInfo: path: string -> CheckpointInfo

    /// <summary>The parameter values stored in a checkpoint, for a model of the same name and shapes.</summary>
    /// <exception cref="GroupedNewton.StateFormatException">the file is not a valid checkpoint, was written for another model,
    /// or a parameter is missing or differs in shape or dtype.</exception>
    val loadParameters: path: string -> model: Model -> Parameters

    /// <summary>Restores a checkpoint into the optimizer (parameters and state), sets the curvature stream's
    /// position when the checkpoint records one, and returns what the file holds.</summary>
    /// <remarks>Everything is validated before anything changes; on failure the optimizer keeps its parameters
    /// and state.</remarks>
    /// <exception cref="GroupedNewton.StateFormatException">the file is not a valid checkpoint or does not fit the model or the optimizer.</exception>
    /// <exception cref="GroupedNewton.DistributedException">the file was written by another number of data-parallel ranks.</exception>
    val restore: path: string -> model: Model -> optimizer: Optimizer -> curvature: CurvatureStream option -> CheckpointInfo

    /// <summary>Restores a checkpoint into the optimizer (parameters and state) and returns the epoch it was written after
    /// (the rules of <c>restore</c>, without a curvature stream).</summary>
    val load: path: string -> model: Model -> optimizer: Optimizer -> int

    // ---- checkpoint folders

    /// <summary>The checkpoint file for an epoch inside a folder: "epoch-0012.ckpt" (more digits past 9999).</summary>
    val fileFor: folder: string -> epoch: int -> string

    /// <summary>The epoch a checkpoint file name stands for ("epoch-0012.ckpt" → 12), if it is one.</summary>
    val epochOfName: path: string -> int option

    /// <summary>The checkpoint files in a folder, newest epoch first (by the number in the name); empty when the folder does not exist.</summary>
    val all: folder: string -> string list

    /// <summary>The latest checkpoint in a folder, if any.</summary>
    val latest: folder: string -> string option

    /// <summary>Deletes the checkpoints of epochs before <c>epoch</c> except the newest <c>keep</c> of them
    /// (the checkpoint of <c>epoch</c> and later ones are never touched).</summary>
    val prune: folder: string -> epoch: int -> keep: int -> unit

    /// <summary>Deletes the temporary files an interrupted checkpoint write left in a folder (only the atomic-write
    /// temporaries of checkpoint files) and returns their names.</summary>
    val removeTemporaries: folder: string -> string list
