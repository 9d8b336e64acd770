FROM python
RUN --mount=type=bind,from=wheelhouse,target=/wheels \
    --mount=type=bind,source=files/requirements.txt,target=/requirements.txt \
    pip install --no-index --find-links /wheels -r /requirements.txt
COPY files/app.py /app/app.py
CMD ["python", "/app/app.py"]
