/// The command line grammar, declared as Argu templates: one union per command.
module GroupedNewton.Cli.Arguments

open Argu

// The descriptions that several commands share (their defaults are the same everywhere).
let private modelUsage = "mlp | lenet | vgg11 | autoencoder (default mlp)"

let private datasetUsage =
    "fashion-mnist | fashion-mnist-mini | mnist | cifar10 | synthetic (default: fashion-mnist when installed, else the bundled fashion-mnist-mini)"

let private hiddenUsage = "hidden sizes of the MLP, comma separated (default 1024,200,100)"

let private epochsUsage = "number of epochs (default 2)"

let private batchSizeUsage = "mini-batch size (default 100)"

let private activationUsage =
    "tanh | relu | elu | sigmoid | softplus: the hidden layers' activation (default: the model's own: tanh for mlp and lenet, elu for vgg11, relu for autoencoder)"

let private initUsage =
    "reference | pytorch: the initialisation (reference: N(0, 1/fan-in) weights and zero biases, vgg11 σ_w = √2; pytorch: PyTorch's default uniform) (default reference)"

let private divergenceUsage =
    "the divergence guard: the run stops with exit 1 and 'diverged: …' when a step's loss is NaN or infinite, exceeds FACTOR times the first step's loss, or an evaluation gives a non-finite loss; the last good checkpoint is kept (default 1000; 0 turns the guard off)"

/// `train`: one optimizer on one task.
[<CliPrefix(CliPrefix.DoubleDash)>]
type TrainArgs =
    | Model of name: string
    | Dataset of name: string
    | Optimizer of name: string
    | Partition of name: string
    | Hidden of sizes: string
    | Epochs of count: int
    | Batch_Size of size: int
    | Max_Steps of steps: int
    | Samples of count: int
    | Seed of seed: int
    | Threads of count: int
    | Dtype of dtype: string
    | Lr of rate: float
    | Momentum of momentum: float
    | Damping of damping: float
    | Lambda_Int of lambda: float
    | Period of steps: int
    | Rho of rho: float
    | Beta2 of beta2: float
    | Weight_Decay of decay: float
    | Activation of name: string
    | Init of scheme: string
    | Out of dir: string
    | Resume
    | Overwrite
    | Divergence_Factor of factor: float

    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Model _ -> modelUsage
            | Dataset _ -> datasetUsage
            | Optimizer _ ->
                "sgd | adam | grouped-newton | grouped-newton-avg | grouped-newton-auto | sofim | kfac | kbfgs | kbfgs-l (default grouped-newton)"
            | Partition _ ->
                "GroupedNewton partition: canonical | trivial | weights-biases | per-layer | blocks-N | alternate-N (default canonical)"
            | Hidden _ -> hiddenUsage
            | Epochs _ -> epochsUsage
            | Batch_Size _ -> batchSizeUsage
            | Max_Steps _ -> "cap on the steps of an epoch: only the first N × batch-size training samples are used"
            | Samples _ -> "use at most N training samples (synthetic: generate N)"
            | Seed _ -> "seed of the initialisation and the batch order (default 0)"
            | Threads _ -> "threads of the managed kernels (default: all cores, or GROUPEDNEWTON_THREADS; at most four per core)"
            | Dtype _ -> "float32 | float64 (default float32)"
            | Lr _ -> "learning rate (SGD 0.01, Adam 1e-3, SOFIM 0.1, K-FAC 0.1, K-BFGS 0.3)"
            | Momentum _ -> "momentum (default 0.9): SGD, the GroupedNewton direction, K-FAC, K-BFGS; Adam β₁; SOFIM β"
            | Damping _ -> "GroupedNewton damping λ₁ (default .03 for the MLP, .3 otherwise); K-FAC λ (0.1); K-BFGS λ (0.3)"
            | Lambda_Int _ -> "GroupedNewton weight of the cubic term λ_int (default 1)"
            | Period _ -> "GroupedNewton steps between curvature updates (default 10)"
            | Rho _ -> "SOFIM regularisation ρ (default 0.5)"
            | Beta2 _ -> "Adam β₂ (default 0.999)"
            | Weight_Decay _ -> "L2 weight decay (SGD, Adam, SOFIM default 0; K-FAC, K-BFGS 1e-5)"
            | Activation _ -> activationUsage
            | Init _ -> initUsage
            | Out _ ->
                "output folder: metrics.jsonl, metrics.csv, checkpoints (default runs/<model>-<dataset>-<optimizer>); a folder holding an earlier run is refused unless --resume or --overwrite"
            | Resume ->
                "continue from the latest valid checkpoint in --out. Every option that changes the trajectory must be as before (a change is refused, naming the option and both values); only --epochs (more epochs) and --threads may differ (bit-identical results need the same --threads)"
            | Overwrite -> "replace an earlier run in --out (its metrics and checkpoints are removed)"
            | Divergence_Factor _ -> divergenceUsage

/// `compare`: several optimizers on the same task and seeds, with a report.
[<CliPrefix(CliPrefix.DoubleDash)>]
type CompareArgs =
    | Optimizers of names: string
    | Seeds of seeds: string
    | Model of name: string
    | Dataset of name: string
    | Partition of name: string
    | Hidden of sizes: string
    | Epochs of count: int
    | Batch_Size of size: int
    | Max_Steps of steps: int
    | Samples of count: int
    | Threads of count: int
    | Dtype of dtype: string
    | Lr of rate: float
    | Momentum of momentum: float
    | Damping of damping: float
    | Lambda_Int of lambda: float
    | Period of steps: int
    | Rho of rho: float
    | Beta2 of beta2: float
    | Weight_Decay of decay: float
    | Activation of name: string
    | Init of scheme: string
    | Out of dir: string
    | Overwrite
    | Divergence_Factor of factor: float

    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Optimizers _ -> "optimizers to compare, comma separated, each NAME or NAME@LR (default sgd,adam,grouped-newton)"
            | Seeds _ -> "seeds, comma separated (default 0,1)"
            | Model _ -> modelUsage
            | Dataset _ -> datasetUsage
            | Partition _ -> "GroupedNewton partition (default canonical)"
            | Hidden _ -> hiddenUsage
            | Epochs _ -> epochsUsage
            | Batch_Size _ -> batchSizeUsage
            | Max_Steps _ -> "cap on the steps of an epoch"
            | Samples _ -> "use at most N training samples"
            | Threads _ -> "threads of the managed kernels"
            | Dtype _ -> "float32 | float64"
            | Lr _ -> "learning rate (applies to every optimizer that has one)"
            | Momentum _ -> "momentum"
            | Damping _ -> "GroupedNewton damping λ₁; K-FAC and K-BFGS λ"
            | Lambda_Int _ -> "GroupedNewton λ_int"
            | Period _ -> "GroupedNewton period"
            | Rho _ -> "SOFIM ρ"
            | Beta2 _ -> "Adam β₂"
            | Weight_Decay _ -> "L2 weight decay"
            | Activation _ -> activationUsage
            | Init _ -> initUsage
            | Out _ ->
                "output folder: report.html, summary.md, summary.csv, runs/ (default runs/compare); earlier runs there are refused unless --overwrite"
            | Overwrite -> "replace the runs of an earlier comparison in --out"
            | Divergence_Factor _ -> divergenceUsage

/// `summary`: the partition summaries of a model and the rates they give.
[<CliPrefix(CliPrefix.DoubleDash)>]
type SummaryArgs =
    | Model of name: string
    | Dataset of name: string
    | Partition of name: string
    | Hidden of sizes: string
    | Checkpoint of file: string
    | Batch_Size of size: int
    | Samples of count: int
    | Seed of seed: int
    | Threads of count: int
    | Dtype of dtype: string
    | Damping of damping: float
    | Lambda_Int of lambda: float
    | Activation of name: string
    | Init of scheme: string
    | Out of dir: string

    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Activation _ -> activationUsage
            | Init _ -> initUsage
            | Model _ -> modelUsage
            | Dataset _ -> "fashion-mnist | fashion-mnist-mini | mnist | cifar10 | synthetic"
            | Partition _ -> "partition (default canonical)"
            | Hidden _ -> "hidden sizes of the MLP"
            | Checkpoint _ -> "a checkpoint written by train (default: the model at initialisation)"
            | Batch_Size _ -> "samples in the batch the summaries are taken on (default 100)"
            | Samples _ -> "use at most N samples"
            | Seed _ -> "seed of the initialisation (default 0)"
            | Threads _ -> "threads of the managed kernels"
            | Dtype _ -> "float32 | float64"
            | Damping _ -> "GroupedNewton damping λ₁ (default .03 for the MLP, .3 otherwise)"
            | Lambda_Int _ -> "weight of the cubic term λ_int (default 1)"
            | Out _ -> "folder for summary.html with the heat-map of H̄"

/// `derivatives`: the exact derivatives next to finite differences.
[<CliPrefix(CliPrefix.DoubleDash)>]
type DerivativesArgs =
    | Seed of seed: int

    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Seed _ -> "seed of the model, batch and direction (default 0)"

/// The commands.
type CliArgs =
    | [<CliPrefix(CliPrefix.None)>] Train of ParseResults<TrainArgs>
    | [<CliPrefix(CliPrefix.None)>] Compare of ParseResults<CompareArgs>
    | [<CliPrefix(CliPrefix.None)>] Summary of ParseResults<SummaryArgs>
    | [<CliPrefix(CliPrefix.None)>] Derivatives of ParseResults<DerivativesArgs>

    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Train _ -> "train a model with one optimizer: live progress, metrics (JSON lines, CSV), a checkpoint per epoch"
            | Compare _ -> "run several optimizers on the same task and seeds; HTML report with plots, markdown and CSV tables"
            | Summary _ -> "ḡ, H̄, D̄ of a model for a partition, the GroupedNewton rates and suggested per-layer SGD rates"
            | Derivatives _ -> "exact 1st-3rd order derivatives of a small MLP next to finite differences"

/// The parser of the whole command line.
let parser () = ArgumentParser.Create<CliArgs>(programName = "groupednewton")
