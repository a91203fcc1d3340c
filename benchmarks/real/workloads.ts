// The large real programs' workloads, shared by run.ts (RESULTS-real.md) and overhead.mjs (which imports the built
// copy from dist/).

/** A 16-bit ALU with a multiplier, for yosys to synthesise (ABC in-process). */
export const VERILOG = `module top #(parameter W = 16) (input clk, input [W-1:0] a, b, input [2:0] op, output reg [2*W-1:0] y);
  reg [2*W-1:0] acc;
  always @(posedge clk) begin
    case (op)
      3'd0: acc <= a + b;
      3'd1: acc <= a - b;
      3'd2: acc <= a * b;
      3'd3: acc <= {a, b} ^ acc;
      3'd4: acc <= acc + a * b;
      3'd5: acc <= (a < b) ? {W{1'b1}} : acc >> 1;
      default: acc <= acc;
    endcase
    y <= acc;
  end
endmodule
`;

/** yosys's arguments: VERILOG is at /work/alu.v, the yosys share directory at /share */
export const YOSYS_ARGS = ['-Q', '-T', '-p', 'read_verilog /work/alu.v; synth -top top; stat'];

/** CRuby: a 2M-iteration integer loop and a 50k-entry Hash of strings */
export const RUBY_SCRIPT = 'x = 0; 2_000_000.times { |i| x += (i * i) % 7 }; h = {}; 50_000.times { |i| h["k#{i}"] = i.to_s * 3 }; ' +
  'puts x; puts h.size; puts h.values.map(&:size).sum; puts RUBY_VERSION';
export const RUBY_ARGS = ['-EUTF-8', '-e_=0', RUBY_SCRIPT];
