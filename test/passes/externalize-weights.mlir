// RUN: qforge-opt %s --qf-externalize-weights='min-elements=4' | FileCheck %s

// Resource constants and dense constants of at least 4 elements become leading arguments of
// @main that carry their data; small and splat constants stay inline. The entry gets a C
// interface for the runtime.
// CHECK-LABEL: func.func @main
// CHECK-SAME:    (%[[W0:.+]]: tensor<2x2xf32> {qf.name = "big", qf.weight = dense_resource<blob> : tensor<2x2xf32>},
// CHECK-SAME:     %[[W1:.+]]: tensor<4xf32> {qf.weight = dense<[1.000000e+00, 2.000000e+00, 3.000000e+00, 4.000000e+00]> : tensor<4xf32>},
// CHECK-SAME:     %[[X:.+]]: tensor<2x2xf32> {qf.name = "x"})
// CHECK-SAME:    attributes {llvm.emit_c_interface}
// CHECK:         %[[SMALL:.+]] = "tosa.const"() <{values = dense<[5.000000e+00, 6.000000e+00]> : tensor<2xf32>}>
// CHECK:         %[[SPLAT:.+]] = "tosa.const"() <{values = dense<0.000000e+00> : tensor<1xf32>}>
// CHECK:         tosa.add %[[X]], %[[W0]]
func.func @main(%x: tensor<2x2xf32> {qf.name = "x"}) -> (tensor<2x2xf32>, tensor<4xf32>, tensor<2xf32>, tensor<1xf32>) {
  %a = "tosa.const"() {values = dense_resource<blob> : tensor<2x2xf32>, qf.name = "big"} : () -> tensor<2x2xf32>
  %b = "tosa.const"() {values = dense<[1.0, 2.0, 3.0, 4.0]> : tensor<4xf32>} : () -> tensor<4xf32>
  %c = "tosa.const"() {values = dense<[5.0, 6.0]> : tensor<2xf32>} : () -> tensor<2xf32>
  %d = "tosa.const"() {values = dense<0.0> : tensor<1xf32>} : () -> tensor<1xf32>
  %y = tosa.add %x, %a : (tensor<2x2xf32>, tensor<2x2xf32>) -> tensor<2x2xf32>
  return %y, %b, %c, %d : tensor<2x2xf32>, tensor<4xf32>, tensor<2xf32>, tensor<1xf32>
}

{-#
  dialect_resources: {
    builtin: {
      blob: "0x040000000000803F000000400000404000008040"
    }
  }
#-}
