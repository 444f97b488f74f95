module GroupedNewton.Tests.GemmTests
