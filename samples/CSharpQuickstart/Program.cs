// Trains LeNet-5 with GroupedNewton from C#: Fashion-MNIST when it is installed, otherwise a
// synthetic task of the same shape. Prints loss and accuracy per epoch and the learning rate
// GroupedNewton chose for every layer's weight and bias. Ctrl+C stops cleanly between steps.
//
//   dotnet run -c Release --project samples/CSharpQuickstart -- --epochs 1 --max-steps 50
using GroupedNewton.CSharp;

var settings = Settings.Parse(args);
if (settings is null) return Settings.HelpShown ? 0 : 2;

// 1. data: the real data set when installed, else a synthetic task that needs no files
Dataset train, test;
if (!settings.Synthetic && (settings.DataFolder is not null || Datasets.IsAvailable("fashion-mnist")))
{
    Console.WriteLine("loading Fashion-MNIST ...");
    (train, test) = await Datasets.LoadFashionMnistAsync(settings.DataFolder);
}
else
{
    Console.WriteLine("Fashion-MNIST not found: using a synthetic 10-class task of 1x28x28 images");
    var all = Datasets.SyntheticClassification(seed: 1, count: 12000, sampleShape: new[] { 1, 28, 28 }, classes: 10);
    (train, test) = all.SplitAt(2000);
}
if (settings.MaxSteps is int steps) train = train.Take(Math.Min(train.Count, steps * settings.BatchSize));
if (settings.TestSize is int n) test = test.Take(Math.Min(test.Count, n));
Console.WriteLine($"train {train.Count} samples, test {test.Count} samples");

// 2. model and optimizer: LeNet-5 with the paper's GroupedNewton settings (damping 0.3 for LeNet)
var model = Models.LeNet5(channels: 1, pixels: 28, init: Initialization.Reference(seed: 0));
var options = GroupedNewtonOptions.Paper(CurvatureSource.Cycle(model, train, batchSize: settings.BatchSize));
options.Damping = 0.3;
var optimizer = Optimizer.Create(model, options);
var damping = new ReduceDampingOnPlateau(optimizer);

// 3. training with progress reports and cancellation
using var cancel = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) => { e.Cancel = true; cancel.Cancel(); };
var trainer = new Trainer(model, optimizer, new TrainerOptions { Epochs = 1, BatchSize = settings.BatchSize });
var progress = new ConsoleProgress();
try
{
    for (int epoch = 0; epoch < settings.Epochs; epoch++)
    {
        var m = (await trainer.TrainAsync(train, test: test, progress: progress, cancellationToken: cancel.Token)).Single();
        Console.WriteLine();
        Console.WriteLine($"epoch {m.Epoch}: train loss {m.TrainLoss:F4}, train accuracy {m.TrainAccuracy:P1}, " +
                          $"test loss {m.Test!.Loss:F4}, test accuracy {m.Test.Accuracy:P1} ({m.WallSeconds:F0} s)");
        Console.WriteLine("  learning rate per layer (damping x eta):");
        foreach (var (name, lr) in m.LearningRates)
            Console.WriteLine($"    {name,-10} {lr,12:G4}");
        damping.Step(m.TrainLoss);
    }
}
catch (OperationCanceledException)
{
    Console.WriteLine();
    Console.WriteLine($"stopped after {optimizer.StepCount} steps; the model keeps the last completed step");
    Console.WriteLine($"test: {model.Evaluate(test)}");
}
return 0;

/// <summary>Prints a dot every 10 steps (reports arrive on the training thread).</summary>
sealed class ConsoleProgress : IProgress<TrainingProgress>
{
    public void Report(TrainingProgress p)
    {
        if (p.Kind == TrainingProgressKind.StepCompleted && p.Step % 10 == 0) Console.Write('.');
    }
}

/// <summary>Command-line settings.</summary>
sealed class Settings
{
    public int Epochs { get; private set; } = 2;
    public int? MaxSteps { get; private set; }
    public int? TestSize { get; private set; }
    public int BatchSize { get; private set; } = 100;
    public bool Synthetic { get; private set; }
    public string? DataFolder { get; private set; }
    public static bool HelpShown { get; private set; }

    const string Usage =
        "options: --epochs N (default 2)  --max-steps N (steps per epoch; trains on the first N x batch samples)\n" +
        "         --test-size N  --batch-size N (default 100)  --synthetic  --data FOLDER";

    public static Settings? Parse(string[] args)
    {
        var s = new Settings();
        for (int i = 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            int Positive() => int.TryParse(Next(), out var v) && v > 0 ? v : throw new ArgumentException($"{args[i - 1]} needs a positive integer");
            try
            {
                switch (args[i])
                {
                    case "--epochs": s.Epochs = Positive(); break;
                    case "--max-steps": s.MaxSteps = Positive(); break;
                    case "--test-size": s.TestSize = Positive(); break;
                    case "--batch-size": s.BatchSize = Positive(); break;
                    case "--synthetic": s.Synthetic = true; break;
                    case "--data": s.DataFolder = Next(); break;
                    case "--help" or "-h": Console.WriteLine(Usage); HelpShown = true; return null;
                    default: throw new ArgumentException($"unknown option {args[i]}");
                }
            }
            catch (ArgumentException e)
            {
                Console.Error.WriteLine(e.Message);
                Console.Error.WriteLine(Usage);
                return null;
            }
        }
        return s;
    }
}
