// Stimulus for a gate-level bench.designs.PEArray (module "top"): one word of
// stimulus.hex per clock cycle, {clear, w_in[7:0], shift, x_in[7:0]} (one shift bit for both
// chains), applied on the falling edge; the array's nets are dumped to activity.vcd.
`timescale 1ns/1ps
module asic_bench_tb;
    parameter integer CYCLES = 2000;
    parameter integer HALF_PERIOD_NS = 5;
    reg clk = 1'b0;
    always #(HALF_PERIOD_NS) clk = ~clk;
    reg [17:0] stimulus [0:CYCLES-1];
    reg [17:0] now = 18'd0;
    wire [63:0] out;
    top dut (
        .clk(clk), .rst(1'b0),
        .x_in(now[7:0]), .x_shift(now[8]), .w_in(now[16:9]), .w_shift(now[8]),
        .clear(now[17]), .out(out)
    );
    integer i;
    initial begin
        $readmemh("stimulus.hex", stimulus);
        $dumpfile("activity.vcd");
        $dumpvars(1, dut);
        for (i = 0; i < CYCLES; i = i + 1) begin
            @(negedge clk);
            now = stimulus[i];
        end
        $finish;
    end
endmodule
