// Your own data, end to end, from C#: arrays -> Dataset.FromArrays -> model -> optimizer ->
// Trainer -> SaveParameters -> LoadParameters -> Predict. It needs only the GroupedNewton.CSharp
// package (see samples/OwnData/README.md). tests/Package.Tests builds this very file against
// the packed package and runs it.
using GroupedNewton.CSharp;

// 1. Your arrays: 3,000 points of the plane, flat (x0, y0, x1, y1, ...), each labelled by the
//    quadrant it lies in (0 to 3).
var random = new Random(7);
int count = 3000;
var samples = new float[count * 2];
var labels = new int[count];
for (int i = 0; i < count; i++)
{
    float x = (float)(2 * random.NextDouble() - 1), y = (float)(2 * random.NextDouble() - 1);
    samples[2 * i] = x;
    samples[2 * i + 1] = y;
    labels[i] = (x < 0 ? 1 : 0) + (y < 0 ? 2 : 0);
}
var (train, test) = Dataset.FromArrays(samples, sampleShape: new[] { 2 }, labels, classes: 4).SplitAt(500);

// 2. A model for samples of shape [2] with 4 outputs, and GroupedNewton (one learning rate per
//    weight and bias, computed from curvature batches drawn from the training set).
int[] sizes = { 2, 32, 4 };
var model = Models.Mlp(sizes, Activation.Tanh, Initialization.Reference(seed: 0));
var optimizer = Optimizer.Create(model, GroupedNewtonOptions.Paper(CurvatureSource.Cycle(model, train, batchSize: 50)));

// 3. Training: 5 epochs of batches of 50, the test set evaluated after each.
var trainer = new Trainer(model, optimizer, new TrainerOptions { Epochs = 5, BatchSize = 50 });
foreach (var m in trainer.Train(train, test: test))
    Console.WriteLine($"epoch {m.Epoch}: train loss {m.TrainLoss:F4}, test accuracy {m.Test!.Accuracy:P1}");

// 4. Save the parameters, load them into a new model of the same architecture, predict.
var path = Path.Combine(Path.GetTempPath(), "quadrants.gnts");
model.SaveParameters(path);
var reloaded = Models.Mlp(sizes, Activation.Tanh, Initialization.Reference(seed: 1));
reloaded.LoadParameters(path);
int[] before = model.Predict(test.Inputs());
int[] after = reloaded.Predict(test.Inputs());
int correct = after.Zip(test.Labels(), (p, l) => p == l ? 1 : 0).Sum();
Console.WriteLine($"reloaded model: {correct} of {test.Count} test points right; same predictions as the trained model: {after.SequenceEqual(before)}");
File.Delete(path);
return after.SequenceEqual(before) ? 0 : 1;
