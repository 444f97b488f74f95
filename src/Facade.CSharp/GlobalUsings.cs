// The namespaces and core aliases that most files of the facade use, declared once.
global using System;
global using System.Collections.Generic;
global using System.IO;
global using System.Linq;
global using System.Threading;
global using System.Threading.Tasks;
global using Microsoft.FSharp.Core;
global using CoreGroup = global::GroupedNewton.ParamGroup;
global using CoreOptimizer = global::GroupedNewton.Optimizer;
global using CoreParameters = global::GroupedNewton.Parameters;
global using CoreTensor = global::GroupedNewton.Tensor;
