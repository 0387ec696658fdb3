# The seed tutorial's hands-on solution ("research -> summarize"), unchanged but for its base_url, which the test
# passes in LLMTAP_BASE_URL.
import os

from openai import OpenAI

client = OpenAI(
    base_url=os.environ["LLMTAP_BASE_URL"],
    api_key="your-helicone-api-key",
)

# Step 1: Research
research = client.chat.completions.create(
    model="gpt-4o",
    messages=[
        {"role": "system", "content": "You are a research assistant."},
        {"role": "user", "content": "Research the benefits of AI observability"},
    ],
    extra_headers={
        "Helicone-Property-Workflow": "research-pipeline",
        "Helicone-Property-Step": "research",
        "Helicone-Property-UserId": "student_1",
    },
)
research_text = research.choices[0].message.content

# Step 2: Summarize
summary = client.chat.completions.create(
    model="gpt-4o-mini",
    messages=[
        {"role": "system", "content": "Summarize in 2 sentences."},
        {"role": "user", "content": research_text},
    ],
    extra_headers={
        "Helicone-Property-Workflow": "research-pipeline",
        "Helicone-Property-Step": "summarize",
        "Helicone-Property-UserId": "student_1",
    },
)
print(summary.choices[0].message.content)
