"""An LSTM layer for the baselines, with nn.LSTM's parameters and gate order (i, f, g, o).

Without a mask on the recurrence it runs ``nn.LSTM`` itself (cuDNN on a GPU). A variational
mask on h_{t-1} cannot reach inside cuDNN, so then the same parameters run an explicit loop
over time; a test shows the loop equals ``nn.LSTM`` when the mask is absent.

nn.LSTM has two bias vectors (input and recurrent), both trained and both drawn from
U(±init_scale), as in Zaremba et al.'s Torch code (two nn.Linear); Kim et al.'s code (no bias on
h2h) and the TF tutorial have one. At the baselines' init scale of 0.05 the sum differs little.
"""

from __future__ import annotations

import torch
from torch import nn

LSTMState = tuple[torch.Tensor, torch.Tensor]  # (h, c), each [batch, hidden]


class LSTMLayer(nn.Module):
    def __init__(self, d_in: int, hidden: int):
        super().__init__()
        self.hidden = hidden
        self.rnn = nn.LSTM(d_in, hidden, batch_first=True)

    def zero_state(self, batch_size: int, device=None, dtype=None) -> LSTMState:
        zeros = torch.zeros(batch_size, self.hidden, device=device, dtype=dtype)
        return zeros, zeros.clone()

    def forward(
        self, x: torch.Tensor, state: LSTMState, h_mask: torch.Tensor | None = None, h_mask_tied: bool = True
    ) -> tuple[torch.Tensor, LSTMState]:
        """Return (h for every step [batch, T, hidden], the state to carry).

        ``h_mask`` ([1 or batch, hidden], one per window) as for the SCRN: tied (Inan et al.), the
        masked h feeds the recurrence and the next layer and is carried; untied (Gal and
        Ghahramani), it masks h_{t-1} inside the recurrence only.
        """
        h0, c0 = state
        if h_mask is None:
            out, (h, c) = self.rnn(x, (h0.unsqueeze(0).contiguous(), c0.unsqueeze(0).contiguous()))
            return out, (h[0], c[0])
        return self._loop(x, h0, c0, h_mask, h_mask_tied)

    def _loop(self, x, h, c, mask, tied):
        rnn = self.rnn
        xw = torch.matmul(x, rnn.weight_ih_l0.t()) + rnn.bias_ih_l0 + rnn.bias_hh_l0  # hoisted out of the loop
        w_hh = rnn.weight_hh_l0.t()
        out = []
        for t in range(x.shape[1]):
            h_in = h if tied else h * mask
            i, f, g, o = torch.addmm(xw[:, t], h_in, w_hh).chunk(4, dim=-1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            if tied:
                h = h * mask
            out.append(h)
        return torch.stack(out, dim=1), (h, c)
