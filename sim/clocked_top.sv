// The simulation top of a SpikeForge build: hw.InferenceHarness with its clock generated here,
// in the simulator (time unit 1 ns, set by the runner), so that cocotb is woken once per
// inference and never to toggle a clock.
// Port widths come from the build's plan as parameters (sim/runner.py sets them). The harness
// port "context" is a SystemVerilog keyword, hence "ctx" here.
module spikeforge_sim_top #(
    parameter int CONTEXT_BITS = 8,
    parameter int LOGIT_BITS = 4096,
    parameter int COUNTER_BITS = 24,
    parameter int PROFILE_BITS = 64,
    parameter int HALF_PERIOD_NS = 5
) (
    input wire rst,
    input wire start,
    input wire [CONTEXT_BITS-1:0] ctx,
    output logic clk,
    output wire done,
    output wire [LOGIT_BITS-1:0] logits_flat,
    output wire [7:0] token,
    output wire [31:0] cycles,
    output wire [COUNTER_BITS-1:0] spike_counts,
    output wire [PROFILE_BITS-1:0] layer_cycles
);
    initial clk = 1'b0;
    always #(HALF_PERIOD_NS) clk = ~clk;

    spikeforge_top harness (
        .clk(clk),
        .rst(rst),
        .start(start),
        .\context (ctx),
        .done(done),
        .logits_flat(logits_flat),
        .token(token),
        .cycles(cycles),
        .spike_counts(spike_counts),
        .layer_cycles(layer_cycles)
    );
endmodule
