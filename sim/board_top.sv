// The simulation top of a board: hw.bridge.UartBridge (converted as spikeforge_board, at the
// simulation's UART divisor) with its clock generated here, so that cocotb wakes only to
// drive and sample the UART lines (time unit 1 ns, set by the runner).
module spikeforge_board_sim #(
    parameter int HALF_PERIOD_NS = 5
) (
    input wire rst,
    input wire rx,
    output wire tx,
    output logic clk
);
    initial clk = 1'b0;
    always #(HALF_PERIOD_NS) clk = ~clk;

    spikeforge_board bridge (
        .clk(clk),
        .rst(rst),
        .rx(rx),
        .tx(tx)
    );
endmodule
